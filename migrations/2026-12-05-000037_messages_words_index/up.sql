-- Each message's words under its workspace (migration 000036), built while writes go on.
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_words
    ON messages USING gin (workspace_words(workspace_id, search));
