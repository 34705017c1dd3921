-- A subscriber reads its workspace's events after its cursor, in stream order (000069).
-- Built while events are written.
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_stream
    ON audit_events (workspace_id, xid, id) WHERE xid IS NOT NULL;
