-- Accounts, workspaces and memberships: the tenancy core.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL CHECK (email = btrim(email) AND email <> ''),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    password_hash text NOT NULL,
    email_verified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
COMMENT ON TABLE users IS 'People who can sign in. Emails are unique case-insensitively.';
COMMENT ON COLUMN users.password_hash IS 'Argon2id PHC string; the password itself is never stored.';

CREATE TABLE workspaces (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now(),
    trial_ends_at timestamptz NOT NULL,
    deleted_at timestamptz
);
COMMENT ON TABLE workspaces IS 'The unit of isolation, collaboration and billing.';
COMMENT ON COLUMN workspaces.deleted_at IS 'Soft delete: set by deleteWorkspace; the row and its data stay for a later purge job.';

ALTER TABLE users ADD COLUMN active_workspace_id uuid REFERENCES workspaces (id) ON DELETE SET NULL;
CREATE INDEX users_active_workspace_id ON users (active_workspace_id);
COMMENT ON COLUMN users.active_workspace_id IS 'The last workspace the user switched to, so a frontend can restore it.';

CREATE TABLE memberships (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user_id ON memberships (user_id);
CREATE INDEX memberships_page ON memberships (workspace_id, joined_at, user_id);
-- At most one Owner, checked at once; at least one, checked at commit (trigger below).
CREATE UNIQUE INDEX memberships_one_owner ON memberships (workspace_id) WHERE role = 'owner';
COMMENT ON TABLE memberships IS 'Who belongs to which workspace, with which role. Exactly one owner per live workspace.';

CREATE FUNCTION memberships_check_exactly_one_owner() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ws uuid;
    owners integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        ws := OLD.workspace_id;
    ELSE
        ws := NEW.workspace_id;
    END IF;
    IF EXISTS (SELECT 1 FROM workspaces WHERE id = ws AND deleted_at IS NULL) THEN
        SELECT count(*) INTO owners FROM memberships WHERE workspace_id = ws AND role = 'owner';
        IF owners <> 1 THEN
            RAISE EXCEPTION 'workspace % must have exactly one owner, has %', ws, owners
                USING ERRCODE = 'check_violation', CONSTRAINT = 'memberships_exactly_one_owner';
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER memberships_exactly_one_owner
    AFTER INSERT OR UPDATE OR DELETE ON memberships
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION memberships_check_exactly_one_owner();

CREATE TABLE access_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('session', 'personal')),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX access_tokens_user_id ON access_tokens (user_id);
COMMENT ON TABLE access_tokens IS 'Bearer tokens: sessions from signUp/signIn and personal access tokens.';
COMMENT ON COLUMN access_tokens.token_hash IS 'SHA-256 of the token; the token is shown once and never stored.';
