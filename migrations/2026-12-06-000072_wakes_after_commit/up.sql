-- Live updates (issue 25): a workspace's new events wake servers through Redis after the
-- commit (src/live/wakes.rs), no longer through NOTIFY inside it. PostgreSQL serialises
-- the commits of every transaction that notified (a database-wide lock held through the
-- commit's WAL flush), which capped audited writes at about 3,300 a second on one
-- database (BENCHMARKS.md, twenty-third round). A wake lost between the commit and the
-- publish (a crash, Redis away) is found by each server's poll of the streams' heads
-- below, once a second.
--
-- Dropping the trigger breaks no binary of a rollout: live updates (000069) came after
-- the last release (2026-12-05, CHANGELOG.md), so no released binary listens for it.
DROP TRIGGER workspace_events ON audit_events;
DROP FUNCTION notify_workspace_event();

-- The last number of each of `ids`' streams (the workspaces a server has subscribers to),
-- across workspaces: only numbers, for the listening connection of each server, which has
-- no workspace of its own. Like the other owner-run functions the application role may
-- call across workspaces (`workspaces_to_purge`), it tells whoever holds that role how
-- busy a workspace whose id they know is, and nothing of its contents.
CREATE FUNCTION workspace_event_heads(ids uuid[])
RETURNS TABLE (workspace_id uuid, seq bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.workspace_id, s.seq FROM workspace_event_seqs s WHERE s.workspace_id = ANY (ids)
$$;
REVOKE ALL ON FUNCTION workspace_event_heads(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION workspace_event_heads(uuid[]) TO linkai_app;
