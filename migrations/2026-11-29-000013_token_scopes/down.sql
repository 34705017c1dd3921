ALTER TABLE access_tokens
    DROP COLUMN user_agent,
    DROP COLUMN workspace_ids,
    DROP COLUMN read_only,
    DROP COLUMN expires_at;
