-- Analytics without a filter read the workspace's hours over all agents and channels: one
-- row per hour. At hour x agent x channel a busy workspace's 90 days were 67,000 rows and
-- 72 ms to add up (bench/run, fifteenth round); these are at most 2,160.
CREATE TABLE workspace_conversation_hours (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    hour timestamptz NOT NULL,
    started integer NOT NULL DEFAULT 0,
    closed integer NOT NULL DEFAULT 0,
    messages_in integer NOT NULL DEFAULT 0,
    messages_out integer NOT NULL DEFAULT 0,
    sms_segments integer NOT NULL DEFAULT 0,
    calls integer NOT NULL DEFAULT 0,
    call_seconds bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, hour)
);
COMMENT ON TABLE workspace_conversation_hours IS 'Per UTC hour, over all agents and channels: what conversation_hours counts, kept by the same statements. Analytics without an agent or channel filter read these.';
ALTER TABLE workspace_conversation_hours ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_conversation_hours FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON workspace_conversation_hours USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON workspace_conversation_hours TO linkai_app;

INSERT INTO workspace_conversation_hours (workspace_id, hour, started, closed, messages_in,
                                          messages_out, sms_segments, calls, call_seconds)
SELECT workspace_id, hour, sum(started), sum(closed), sum(messages_in), sum(messages_out),
       sum(sms_segments), sum(calls), sum(call_seconds)
FROM conversation_hours
GROUP BY workspace_id, hour;

-- The conversations page's `totalCount` without a filter (or by channel or status) adds up
-- these rows instead of counting the workspace's conversations: a count(*) over the busy
-- workspace's 100,200 took 7 ms of the page's 10 (bench/run). Triggers keep them, so every
-- way a conversation comes or goes counts: the runtime's writes, deletion, the retention
-- round, and a workspace's own deletion (whose cascade may take these rows first: the
-- triggers only update them then, never make them again).
CREATE TABLE conversation_totals (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    channel text NOT NULL,
    status text NOT NULL,
    conversations bigint NOT NULL CHECK (conversations >= 0),
    PRIMARY KEY (workspace_id, channel, status)
);
COMMENT ON TABLE conversation_totals IS 'How many conversations a workspace has, per channel and status; kept by the triggers on conversations.';
ALTER TABLE conversation_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_totals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON conversation_totals USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE ON conversation_totals TO linkai_app;

INSERT INTO conversation_totals (workspace_id, channel, status, conversations)
SELECT workspace_id, channel, status, count(*) FROM conversations GROUP BY 1, 2, 3;

-- Adds `n` (negative: takes) to one row. Taking never makes a row: a workspace's deletion
-- may have removed it already.
CREATE FUNCTION add_conversation_total(ws uuid, ch text, st text, n bigint) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS
$$
BEGIN
    IF n > 0 THEN
        INSERT INTO public.conversation_totals AS t (workspace_id, channel, status, conversations)
        VALUES (ws, ch, st, n)
        ON CONFLICT (workspace_id, channel, status)
        DO UPDATE SET conversations = t.conversations + EXCLUDED.conversations;
    ELSIF n < 0 THEN
        UPDATE public.conversation_totals t SET conversations = t.conversations + n
        WHERE t.workspace_id = ws AND t.channel = ch AND t.status = st;
    END IF;
END
$$;

-- Inserts and deletes count per statement (a retention batch is one update per group);
-- a status change per row, and only then (not on every append). Rows are taken in
-- (workspace, channel, status) order, whatever the statement's order, so a retention batch
-- and a runtime's close never wait on each other in a cycle.
CREATE FUNCTION count_conversations() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS
$$
DECLARE
    d record;
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        FOR d IN SELECT * FROM (VALUES (OLD.workspace_id, OLD.channel, OLD.status, -1::bigint),
                                       (NEW.workspace_id, NEW.channel, NEW.status, 1::bigint))
                     AS m (workspace_id, channel, status, n)
                 ORDER BY 1, 2, 3 LOOP
            PERFORM public.add_conversation_total(d.workspace_id, d.channel, d.status, d.n);
        END LOOP;
    ELSIF TG_OP = 'INSERT' THEN
        FOR d IN SELECT workspace_id, channel, status, count(*) AS n FROM came
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LOOP
            PERFORM public.add_conversation_total(d.workspace_id, d.channel, d.status, d.n);
        END LOOP;
    ELSE
        FOR d IN SELECT workspace_id, channel, status, -count(*) AS n FROM gone
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LOOP
            PERFORM public.add_conversation_total(d.workspace_id, d.channel, d.status, d.n);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversations_came AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS came FOR EACH STATEMENT EXECUTE FUNCTION count_conversations();
CREATE TRIGGER conversations_gone AFTER DELETE ON conversations
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION count_conversations();
CREATE TRIGGER conversations_moved AFTER UPDATE OF status, channel ON conversations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.channel IS DISTINCT FROM NEW.channel)
    EXECUTE FUNCTION count_conversations();
