-- Live updates (issue 25): every audit event is also the workspace's event stream.
--
-- Ordering. An event's id is random and its time is when it was written, not when it
-- committed: a transaction that started first can commit last. So a subscriber's place in
-- the stream is (xid, id), where xid is the writing transaction's id, and it reads only
-- events whose transaction is older than every transaction still running
-- (`pg_snapshot_xmin`): no event can appear later below that line, so a cursor never
-- skips one, however commits interleave.
--
-- Rows written before this migration have no xid: they are history, not stream.
-- The column is added without a default first so the table is not rewritten; the default
-- applies to new rows only.
ALTER TABLE audit_events ADD COLUMN xid xid8;
ALTER TABLE audit_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

-- Wakes each server's one listening connection after commit (NOTIFY is transactional).
-- The payload names the workspace only; subscribers read the events themselves, under
-- row-level security and their role. Identical payloads in one transaction are folded
-- into one notification by PostgreSQL.
CREATE FUNCTION notify_workspace_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('workspace_events', NEW.workspace_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER workspace_events AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION notify_workspace_event();
