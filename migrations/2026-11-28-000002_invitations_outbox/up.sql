-- Invitations, one-time account links, and the transactional job outbox.

CREATE TABLE invitations (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email text NOT NULL CHECK (email = btrim(email) AND email <> ''),
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired')),
    token_hash bytea UNIQUE,
    delivery integer NOT NULL DEFAULT 1 CHECK (delivery >= 1),
    delivered integer NOT NULL DEFAULT 0 CHECK (delivered >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    responded_at timestamptz
);
CREATE INDEX invitations_page ON invitations (workspace_id, created_at, id);
CREATE UNIQUE INDEX invitations_one_pending_per_email
    ON invitations (workspace_id, lower(email)) WHERE status = 'pending';
COMMENT ON TABLE invitations IS 'Invitations to join a workspace by email. PENDING past expires_at reads as EXPIRED.';
COMMENT ON COLUMN invitations.token_hash IS 'SHA-256 of the link token, set when the email is sent; cleared on resend so old links die.';
COMMENT ON COLUMN invitations.delivery IS 'Sends requested: 1 at creation, +1 per resend. A send job for an older delivery is skipped.';
COMMENT ON COLUMN invitations.delivered IS 'The last delivery whose email was handed to the mail transport.';

CREATE TABLE invitation_sends (
    invitation_id uuid NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email_lower text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitation_sends_workspace ON invitation_sends (workspace_id, sent_at);
CREATE INDEX invitation_sends_email ON invitation_sends (email_lower, sent_at);
CREATE INDEX invitation_sends_invitation ON invitation_sends (invitation_id, sent_at);
COMMENT ON TABLE invitation_sends IS 'One row per invitation email requested (create or resend): the basis of the rate limits.';

CREATE TABLE account_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    token_hash bytea UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    sent_at timestamptz,
    used_at timestamptz
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose, created_at);
COMMENT ON TABLE account_tokens IS 'One-time links for email verification and password reset; only hashes are stored.';

CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE outbox IS 'Jobs written in the same transaction as the change that implies them; the relay moves them to Redis and deletes them.';

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
