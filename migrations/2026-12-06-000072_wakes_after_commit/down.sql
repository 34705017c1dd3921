DROP FUNCTION workspace_event_heads(uuid[]);

CREATE FUNCTION notify_workspace_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('workspace_events', NEW.workspace_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER workspace_events AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION notify_workspace_event();
