-- Ready to shard (tests/it/citus.rs): resources are keyed by workspace. First the index,
-- built while resources are written (one statement, outside a transaction: metadata.toml);
-- migration 000053 makes it the primary key.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS resources_workspace_id_id ON resources (workspace_id, id);
