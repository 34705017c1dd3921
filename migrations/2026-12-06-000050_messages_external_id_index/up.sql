-- Ready to shard: the runtime's message ids are unique per conversation within the
-- workspace. This release's appends use it; the next one drops the old key it replaces.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS messages_workspace_conversation_external_id
    ON messages (workspace_id, conversation_id, external_id);
