-- Two rollups that keep reads from growing with a busy workspace's data, each kept by
-- triggers (so every writer keeps them, old binaries during a deploy included):
-- - workspace_conversation_hours: analytics without a filter read one row per hour (at
--   hour x agent x channel a busy workspace's 90 days were 67,000 rows and 72 ms to add up,
--   bench/run's fifteenth round; these are at most 2,160);
-- - conversation_totals: the conversations page's `totalCount` without a filter, or by
--   channel or status, adds these up instead of counting (7 ms of the busy page's 10).
-- The backfills run with writers held off and row-level security off (a role that does
-- not bypass it fails here rather than backfilling nothing), after the triggers exist.
SET LOCAL row_security = off;
LOCK TABLE conversations, conversation_hours IN SHARE ROW EXCLUSIVE MODE;

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
COMMENT ON TABLE workspace_conversation_hours IS 'Per UTC hour, over all agents and channels: conversation_hours added up, kept by its triggers. Analytics without an agent or channel filter read these.';
ALTER TABLE workspace_conversation_hours ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_conversation_hours FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON workspace_conversation_hours USING (workspace_id = app_workspace_id());
GRANT SELECT ON workspace_conversation_hours TO linkai_app;

CREATE TABLE conversation_totals (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    channel text NOT NULL,
    status text NOT NULL,
    conversations bigint NOT NULL,
    PRIMARY KEY (workspace_id, channel, status)
);
COMMENT ON TABLE conversation_totals IS 'How many conversations a workspace has, per channel and status; kept by the triggers on conversations.';
ALTER TABLE conversation_totals ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_totals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON conversation_totals USING (workspace_id = app_workspace_id());
GRANT SELECT ON conversation_totals TO linkai_app;

-- The triggers' functions run as the owner: they trust only the rows the statement that
-- fired them was allowed to write, and the service's role may only read the rollups.
-- Rows are taken in key order, whatever the statement's order, so two writers (a retention
-- batch and a runtime's close, say) never wait on each other in a cycle.

-- Adds what a statement added to conversation_hours to the workspace's hours: the new rows,
-- less the old ones for an update (an upsert fires both triggers).
CREATE FUNCTION roll_up_workspace_hours() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.workspace_conversation_hours AS h
        SELECT workspace_id, hour, sum(started), sum(closed), sum(messages_in),
               sum(messages_out), sum(sms_segments), sum(calls), sum(call_seconds)
        FROM came GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (workspace_id, hour) DO UPDATE SET
            started = h.started + EXCLUDED.started, closed = h.closed + EXCLUDED.closed,
            messages_in = h.messages_in + EXCLUDED.messages_in,
            messages_out = h.messages_out + EXCLUDED.messages_out,
            sms_segments = h.sms_segments + EXCLUDED.sms_segments,
            calls = h.calls + EXCLUDED.calls, call_seconds = h.call_seconds + EXCLUDED.call_seconds;
    ELSE
        INSERT INTO public.workspace_conversation_hours AS h
        SELECT n.workspace_id, n.hour, sum(n.started - o.started), sum(n.closed - o.closed),
               sum(n.messages_in - o.messages_in), sum(n.messages_out - o.messages_out),
               sum(n.sms_segments - o.sms_segments), sum(n.calls - o.calls),
               sum(n.call_seconds - o.call_seconds)
        FROM came n JOIN was o USING (workspace_id, hour, agent_id, channel)
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (workspace_id, hour) DO UPDATE SET
            started = h.started + EXCLUDED.started, closed = h.closed + EXCLUDED.closed,
            messages_in = h.messages_in + EXCLUDED.messages_in,
            messages_out = h.messages_out + EXCLUDED.messages_out,
            sms_segments = h.sms_segments + EXCLUDED.sms_segments,
            calls = h.calls + EXCLUDED.calls, call_seconds = h.call_seconds + EXCLUDED.call_seconds;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION roll_up_workspace_hours() FROM PUBLIC;
CREATE TRIGGER workspace_hours_came AFTER INSERT ON conversation_hours
    REFERENCING NEW TABLE AS came FOR EACH STATEMENT EXECUTE FUNCTION roll_up_workspace_hours();
CREATE TRIGGER workspace_hours_moved AFTER UPDATE ON conversation_hours
    REFERENCING OLD TABLE AS was NEW TABLE AS came
    FOR EACH STATEMENT EXECUTE FUNCTION roll_up_workspace_hours();

-- Adds `n` (negative: takes) to one row, never below zero. Taking never makes a row: a
-- workspace's deletion may have removed it already.
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
        UPDATE public.conversation_totals t SET conversations = greatest(t.conversations + n, 0)
        WHERE t.workspace_id = ws AND t.channel = ch AND t.status = st;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION add_conversation_total(uuid, text, text, bigint) FROM PUBLIC;

-- Inserts and deletes count per statement (a retention batch is one update per group); a
-- status change per row, and only then (not on every append).
CREATE FUNCTION count_conversations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
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
REVOKE ALL ON FUNCTION count_conversations() FROM PUBLIC;
CREATE TRIGGER conversations_came AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS came FOR EACH STATEMENT EXECUTE FUNCTION count_conversations();
CREATE TRIGGER conversations_gone AFTER DELETE ON conversations
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION count_conversations();
CREATE TRIGGER conversations_moved AFTER UPDATE OF status, channel ON conversations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.channel IS DISTINCT FROM NEW.channel)
    EXECUTE FUNCTION count_conversations();

-- What was there before the triggers (writers wait on the lock above until this commits).
INSERT INTO workspace_conversation_hours (workspace_id, hour, started, closed, messages_in,
                                          messages_out, sms_segments, calls, call_seconds)
SELECT workspace_id, hour, sum(started), sum(closed), sum(messages_in), sum(messages_out),
       sum(sms_segments), sum(calls), sum(call_seconds)
FROM conversation_hours
GROUP BY workspace_id, hour;
INSERT INTO conversation_totals (workspace_id, channel, status, conversations)
SELECT workspace_id, channel, status, count(*) FROM conversations GROUP BY 1, 2, 3;
