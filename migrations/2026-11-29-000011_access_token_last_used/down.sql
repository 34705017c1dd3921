DROP INDEX access_tokens_user_page;
ALTER TABLE access_tokens DROP COLUMN last_used_at;
