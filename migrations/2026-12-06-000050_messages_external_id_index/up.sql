-- Ready to shard: the runtime's message ids are unique per conversation within the
-- workspace; 000051 drops the unique constraint this replaces.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS messages_workspace_conversation_external_id
    ON messages (workspace_id, conversation_id, external_id);
