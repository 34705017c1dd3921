-- Ready to shard (tests/it/citus.rs): the audit log's primary key leads with
-- workspace_id. First its index, built while events are written (one statement, outside a
-- transaction: metadata.toml); migration 000045 makes it the primary key.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS audit_events_workspace_id_id
    ON audit_events (workspace_id, id);
