-- When each bearer token was last used, for the caller's list of tokens. Written at most
-- once per TOKEN_TOUCH_INTERVAL per token (src/auth/mod.rs), not on every request.
ALTER TABLE access_tokens ADD COLUMN last_used_at timestamptz;
COMMENT ON COLUMN access_tokens.last_used_at IS 'Last request made with the token, to within a few minutes.';
-- The caller's live tokens, oldest first.
CREATE INDEX access_tokens_user_page ON access_tokens (user_id, created_at, id) WHERE revoked_at IS NULL;
