-- Live updates (issue 25): every audit event is also the workspace's event stream.
--
-- Ordering. An event's id is random and its time is when it was written, not when it
-- committed: a transaction that started first can commit last. So each event gets the
-- next number of its workspace's stream (`seq`) from a counter row that its transaction
-- keeps locked until it commits: a second writer in the same workspace waits for the first
-- to commit (or roll back, taking its number back) before it takes the next. Numbers are
-- therefore given in commit order, without gaps, and a cursor (the last number seen)
-- never skips an event. Only writers of the same workspace wait for each other, and only
-- from their audit insert to their commit, which comes last in their transactions.
--
-- Rows written before this migration have no number: they are history, not stream.
CREATE TABLE workspace_event_seqs (
    workspace_id uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    seq bigint NOT NULL
);
COMMENT ON TABLE workspace_event_seqs IS 'The last number given to an event of each workspace''s stream (audit_events.seq).';
-- Forced, as on every table with a workspace_id (the owner, which numbers events, bypasses
-- row-level security; the application role only reads its workspace's counter).
ALTER TABLE workspace_event_seqs ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_event_seqs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON workspace_event_seqs USING (workspace_id = app_workspace_id());
GRANT SELECT ON workspace_event_seqs TO linkai_app;

ALTER TABLE audit_events ADD COLUMN seq bigint;

-- The owner numbers events: the application role only reads the counters.
-- The workspace row first (the key share its foreign key takes anyway), then the counter:
-- a membership change locks the workspace row and then writes its event, so taking the
-- counter first would deadlock with it.
CREATE FUNCTION number_workspace_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM 1 FROM workspaces WHERE id = NEW.workspace_id FOR KEY SHARE;
    INSERT INTO workspace_event_seqs AS s (workspace_id, seq) VALUES (NEW.workspace_id, 1)
    ON CONFLICT (workspace_id) DO UPDATE SET seq = s.seq + 1
    RETURNING s.seq INTO NEW.seq;
    RETURN NEW;
END
$$;
CREATE TRIGGER number_workspace_event BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION number_workspace_event();

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

-- A revoked or deleted token (a session signed out, a token revoked, every session after a
-- password reset, an account deleted) closes its sockets: the listening connections learn
-- which token, and its sockets check it again at once.
CREATE FUNCTION notify_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokens_revoked', OLD.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER tokens_revoked AFTER UPDATE OF revoked_at ON access_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION notify_token_revoked();
CREATE TRIGGER tokens_deleted AFTER DELETE ON access_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_token_revoked();
