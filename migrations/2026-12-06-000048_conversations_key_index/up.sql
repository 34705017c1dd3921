-- Ready to shard: conversations' key index, built while they are written; 000053 makes it
-- the primary key.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS conversations_workspace_id_id
    ON conversations (workspace_id, id);
