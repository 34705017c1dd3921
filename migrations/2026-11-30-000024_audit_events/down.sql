DROP FUNCTION prune_audit_events(timestamptz);
DROP TABLE audit_events;
