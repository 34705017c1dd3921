-- Least privilege for bearer tokens (src/auth/mod.rs): an optional expiry, read-only
-- (queries only), and a list of the only workspaces a token may reach; plus the user agent
-- that signed a session in, for the caller's list of sessions.
ALTER TABLE access_tokens
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN read_only boolean NOT NULL DEFAULT false,
    ADD COLUMN workspace_ids uuid[] CHECK (cardinality(workspace_ids) BETWEEN 1 AND 50),
    ADD COLUMN user_agent text CHECK (char_length(user_agent) <= 256);
COMMENT ON COLUMN access_tokens.expires_at IS 'After this the token stops working; null: no fixed expiry (sessions expire by idle and absolute lifetime instead).';
COMMENT ON COLUMN access_tokens.read_only IS 'The token may run queries only.';
COMMENT ON COLUMN access_tokens.workspace_ids IS 'The only workspaces the token reaches; null: every workspace of its user.';
COMMENT ON COLUMN access_tokens.user_agent IS 'User-Agent of the request that signed the session in, as sent (cut to 256 characters).';
