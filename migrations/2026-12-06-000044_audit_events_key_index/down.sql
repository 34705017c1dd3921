DROP INDEX CONCURRENTLY IF EXISTS audit_events_workspace_id_id;
