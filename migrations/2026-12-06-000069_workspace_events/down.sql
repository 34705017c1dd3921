DROP TRIGGER workspace_events ON audit_events;
DROP FUNCTION notify_workspace_event();
ALTER TABLE audit_events DROP COLUMN xid;
