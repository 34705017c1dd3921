CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_search
    ON messages USING gin (workspace_id, search);
