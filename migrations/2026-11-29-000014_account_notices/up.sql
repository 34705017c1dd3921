-- Notices to a person about their own account (their password changed), written in the
-- change's transaction and emailed by the workers once (`sent_at`).
CREATE TABLE account_notices (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('password_changed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX account_notices_user_id ON account_notices (user_id);
COMMENT ON TABLE account_notices IS 'Emails telling a person what happened to their account; sent_at makes a repeated job a no-op.';
GRANT SELECT, INSERT, UPDATE, DELETE ON account_notices TO linkai_app;
