-- Ready to shard: messages' key index, built while they are written; 000053 makes it the
-- primary key.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS messages_workspace_id_id ON messages (workspace_id, id);
