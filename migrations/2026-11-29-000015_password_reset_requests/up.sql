-- Password-reset requests, recorded as asked whatever the address: the request answers in
-- the same statements whether or not an account has it, and the worker does the rest (find
-- the account, apply its cap, make the link). `account_token_id` is the link it made.
CREATE TABLE password_reset_requests (
    id uuid PRIMARY KEY,
    email_lower text NOT NULL CHECK (char_length(email_lower) <= 320),
    requested_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    account_token_id uuid REFERENCES account_tokens (id) ON DELETE SET NULL
);
CREATE INDEX password_reset_requests_requested_at ON password_reset_requests (requested_at);
COMMENT ON TABLE password_reset_requests IS 'Reset requests as typed; processed by the workers, deleted a day later.';
GRANT SELECT, INSERT, UPDATE, DELETE ON password_reset_requests TO linkai_app;
