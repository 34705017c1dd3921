-- A subscriber reads its workspace's events after its cursor, in stream order (000069);
-- the numbers are unique per workspace. Built while events are written.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS audit_events_stream
    ON audit_events (workspace_id, seq) WHERE seq IS NOT NULL;
