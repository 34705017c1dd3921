-- Notices to a person about their own account (password changed, account deleted, a new
-- address asked for),
-- written in the change's transaction with the address and name to use, so a notice
-- outlives the account it is about. The worker deletes the row once the email is sent.
CREATE TABLE account_notices (
    id uuid PRIMARY KEY,
    user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    email text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('password_changed', 'account_deleted', 'email_change_requested')),
    -- email_change_requested: the address asked for.
    detail text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_notices_user_id ON account_notices (user_id);
COMMENT ON TABLE account_notices IS 'Emails telling a person what happened to their account; deleted once sent, so a repeated job is a no-op and no address is kept.';
GRANT SELECT, INSERT, UPDATE, DELETE ON account_notices TO linkai_app;
