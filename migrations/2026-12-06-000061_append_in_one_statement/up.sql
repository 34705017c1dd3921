-- An append in one statement (src/conversations/mod.rs, "Rules"): the runtime's busiest
-- write was ten statements (token, context, BEGIN, workspace, lock, insert, counters,
-- check, rollups, COMMIT). Now it is three: the token, `workspace_for_writes` (what the
-- billing rules in Rust need) and `append_messages`, each its own transaction. The rules
-- stay in Rust: `append_messages` only writes what they allowed, and refuses
-- (`append_in_transaction`) whatever needs more than counting: an alert threshold crossed,
-- or the day's first `service.accessed` event. The caller then runs the same function
-- inside a transaction that records those too.
--
-- Every function here is PL/pgSQL, which keeps its statements' plans for the session; a
-- LANGUAGE sql function that is not inlined is planned again on each call.
--
-- Both functions enter the workspace for their own work (`set_config(..., true)`), so they
-- run on any pooled connection without a context statement, and leave it as they found it
-- (a caller's transaction goes on in its own workspace); row-level security holds on every
-- row they read or write.

-- Adds `quantities` to the workspace's counters of the period, each only while it stays
-- within its cap; answers the totals of those it added (a metric missing from the answer
-- would pass its cap and added nothing). Counters are taken in metric order.
CREATE FUNCTION add_usage(p_workspace uuid, p_period timestamptz, p_metrics text[],
                          p_quantities int4[], p_caps int4[])
RETURNS TABLE (metric text, total bigint)
LANGUAGE plpgsql VOLATILE AS
$$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    INSERT INTO usage_counters AS u (workspace_id, period_start, metric, total)
    SELECT p_workspace, p_period, c.metric, c.quantity
    FROM unnest(p_metrics, p_quantities, p_caps) AS c (metric, quantity, cap)
    WHERE c.quantity <= c.cap
    ORDER BY c.metric
    ON CONFLICT (workspace_id, period_start, metric)
    DO UPDATE SET total = u.total + excluded.total
       WHERE u.total + excluded.total
             <= (SELECT c.cap FROM unnest(p_metrics, p_caps) AS c (metric, cap)
                 WHERE c.metric = excluded.metric)
    RETURNING u.metric, u.total;
END
$$;
REVOKE ALL ON FUNCTION add_usage(uuid, timestamptz, text[], int4[], int4[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_usage(uuid, timestamptz, text[], int4[], int4[]) TO linkai_app;

-- Adds tallies (one per element of the arrays, at `p_at`) to the hourly rollups of one
-- agent (the nil id once it is gone) and channel; hours are taken in order.
CREATE FUNCTION roll_up_conversation_hours(
    p_workspace uuid, p_agent uuid, p_channel text, p_at timestamptz[], p_started int4[],
    p_closed int4[], p_messages_in int4[], p_messages_out int4[], p_sms_segments int4[],
    p_calls int4[], p_call_seconds int8[])
RETURNS void
LANGUAGE plpgsql VOLATILE AS
$$
BEGIN
    INSERT INTO conversation_hours AS h (workspace_id, hour, agent_id, channel, started,
        closed, messages_in, messages_out, sms_segments, calls, call_seconds)
    SELECT p_workspace, date_trunc('hour', t.at, 'UTC'), p_agent, p_channel, sum(t.started),
           sum(t.closed), sum(t.messages_in), sum(t.messages_out), sum(t.sms_segments),
           sum(t.calls), sum(t.call_seconds)
    FROM unnest(p_at, p_started, p_closed, p_messages_in, p_messages_out, p_sms_segments,
                p_calls, p_call_seconds)
         AS t (at, started, closed, messages_in, messages_out, sms_segments, calls, call_seconds)
    GROUP BY 2 ORDER BY 2
    ON CONFLICT (workspace_id, hour, agent_id, channel) DO UPDATE SET
        started = h.started + EXCLUDED.started, closed = h.closed + EXCLUDED.closed,
        messages_in = h.messages_in + EXCLUDED.messages_in,
        messages_out = h.messages_out + EXCLUDED.messages_out,
        sms_segments = h.sms_segments + EXCLUDED.sms_segments,
        calls = h.calls + EXCLUDED.calls, call_seconds = h.call_seconds + EXCLUDED.call_seconds;
END
$$;
REVOKE ALL ON FUNCTION roll_up_conversation_hours(uuid, uuid, text, timestamptz[], int4[],
    int4[], int4[], int4[], int4[], int4[], int8[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION roll_up_conversation_hours(uuid, uuid, text, timestamptz[], int4[],
    int4[], int4[], int4[], int4[], int4[], int8[]) TO linkai_app;

-- The live workspace with its plan's limits (the trial's plan until the trial ends, then
-- its own) and the billing period Stripe last reported: what src/billing/mod.rs's rules
-- need to say whether it takes writes and where usage counts. The columns are
-- `WorkspaceRow`'s (src/workspaces/model.rs).
CREATE FUNCTION workspace_for_writes(p_workspace uuid, p_trial_plan text, p_now timestamptz)
RETURNS TABLE (id uuid, name text, created_at timestamptz, trial_ends_at timestamptz,
               plan text, subscription_status text, payment_failed_at timestamptz,
               time_zone text, conversation_retention_days int4, effective_plan text,
               messages int4, sms int4, agents int4, phone_numbers int4,
               current_period_start timestamptz, current_period_end timestamptz)
LANGUAGE plpgsql VOLATILE AS
$$
#variable_conflict use_column
DECLARE
    v_before text := current_setting('app.workspace_id', true);
BEGIN
    PERFORM set_config('app.workspace_id', p_workspace::text, true);
    RETURN QUERY
    SELECT w.id, w.name, w.created_at, w.trial_ends_at, w.plan, w.subscription_status,
           w.payment_failed_at, w.time_zone, w.conversation_retention_days, e.effective_plan,
           p.messages, p.sms, p.agents, p.phone_numbers,
           a.current_period_start, a.current_period_end
    FROM workspaces w
    CROSS JOIN LATERAL (SELECT COALESCE(CASE WHEN w.trial_ends_at <= p_now THEN w.plan END,
                                        p_trial_plan) AS effective_plan) e
    LEFT JOIN plan_prices p ON p.plan = e.effective_plan
    LEFT JOIN billing_accounts a ON a.workspace_id = w.id
    WHERE w.id = p_workspace AND w.deleted_at IS NULL;
    PERFORM set_config('app.workspace_id', COALESCE(v_before, ''), true);
END
$$;
REVOKE ALL ON FUNCTION workspace_for_writes(uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION workspace_for_writes(uuid, text, timestamptz) TO linkai_app;

-- Appends a batch (the arrays, one element per message, in order) to an open conversation,
-- all or nothing: writes the messages it has not seen, counts the new outbound ones
-- (messages, and for SMS their segments) within `p_caps` (messages, SMS) in the period
-- starting `p_period`, adds them to the rollups and folds them into the conversation.
-- Answers one row per message of the batch, in its order, as stored, beside the
-- conversation and what was counted. Refuses, writing nothing (the constraint names what):
-- - `append_conversation_exists`, `append_conversation_open`;
-- - `append_segments_sms_only`: segments on a conversation that is not SMS;
-- - `append_same_message`: an external id the conversation has, for another message;
-- - `append_within_limits`: the count would pass the cap of the metric in DETAIL;
-- - `append_in_transaction`, when `p_fast_since` is given: a count crosses one of
--   `p_message_levels` or `p_sms_levels` (alert thresholds), or the workspace has no
--   `p_accessed_action` event since `p_fast_since`; the caller records those.
CREATE FUNCTION append_messages(
    p_workspace uuid, p_conversation uuid, p_ids uuid[], p_external_ids text[],
    p_directions text[], p_bodies text[], p_sent timestamptz[], p_segments int2[],
    p_period timestamptz, p_caps int4[], p_message_levels int8[], p_sms_levels int8[],
    p_fast_since timestamptz, p_accessed_action text)
RETURNS TABLE (id uuid, workspace_id uuid, external_id text, agent_id uuid, contact_id uuid,
               channel text, status text, started_at timestamptz,
               last_activity_at timestamptz, closed_at timestamptz, duration_seconds int4,
               message_count int4, first_inbound_at timestamptz, first_reply_at timestamptz,
               service_token_id uuid, m_id uuid, m_external_id text, m_direction text,
               m_body text, m_sent_at timestamptz, m_segments int2, messages_counted int4,
               messages_total int8, sms_counted int4, sms_total int8)
LANGUAGE plpgsql VOLATILE AS
$$
#variable_conflict use_column
DECLARE
    c conversations;
    v_fresh int4;
    v_out int4;
    v_segments int4;
    v_latest timestamptz;
    v_first_in timestamptz;
    v_replies timestamptz[];
    v_at timestamptz[];
    v_in int4[];
    v_outs int4[];
    v_sms int4[];
    v_zeros int4[];
    v_messages_total int8;
    v_sms_total int8;
    v_before text := current_setting('app.workspace_id', true);
    -- The messages written, as the insert answered them.
    v_ids uuid[];
    v_external_ids text[];
    v_directions text[];
    v_bodies text[];
    v_sent timestamptz[];
    v_segments_of int2[];
BEGIN
    PERFORM set_config('app.workspace_id', p_workspace::text, true);
    SELECT * INTO c FROM conversations
    WHERE workspace_id = p_workspace AND id = p_conversation FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such conversation' USING CONSTRAINT = 'append_conversation_exists';
    ELSIF c.status = 'closed' THEN
        RAISE EXCEPTION 'conversation closed' USING CONSTRAINT = 'append_conversation_open';
    ELSIF c.channel <> 'sms' AND EXISTS (SELECT FROM unnest(p_segments) s WHERE s IS NOT NULL) THEN
        RAISE EXCEPTION 'segments on %', c.channel USING CONSTRAINT = 'append_segments_sms_only';
    END IF;

    WITH fresh AS (
        INSERT INTO messages (id, workspace_id, conversation_id, external_id, direction, body,
                              sent_at, segments)
        SELECT b.id, p_workspace, p_conversation, b.external_id, b.direction, b.body,
               b.sent_at, CASE WHEN c.channel = 'sms' THEN COALESCE(b.segments, 1) END
        FROM unnest(p_ids, p_external_ids, p_directions, p_bodies, p_sent, p_segments)
             WITH ORDINALITY AS b (id, external_id, direction, body, sent_at, segments, n)
        ORDER BY b.n
        ON CONFLICT (workspace_id, conversation_id, external_id) DO NOTHING
        RETURNING id, external_id, direction, body, sent_at, segments)
    SELECT count(*), count(*) FILTER (WHERE direction = 'outbound'),
           COALESCE(sum(segments) FILTER (WHERE direction = 'outbound'), 0),
           max(sent_at), min(sent_at) FILTER (WHERE direction = 'inbound'),
           COALESCE(array_agg(sent_at) FILTER (WHERE direction = 'outbound'), '{}'),
           array_agg(sent_at), array_agg((direction = 'inbound')::int4),
           array_agg((direction = 'outbound')::int4), array_agg(COALESCE(segments, 0)::int4),
           array_agg(0), array_agg(id), array_agg(external_id), array_agg(direction),
           array_agg(body), array_agg(sent_at), array_agg(segments)
    INTO v_fresh, v_out, v_segments, v_latest, v_first_in, v_replies, v_at, v_in, v_outs,
         v_sms, v_zeros, v_ids, v_external_ids, v_directions, v_bodies, v_sent, v_segments_of
    FROM fresh;

    -- A retry: each id the conversation had must be the same message. Each is found by the
    -- whole key: a join on the batch let the generic plan read every message of the
    -- conversation (0.5 ms for 1,200).
    IF v_fresh < cardinality(p_ids) AND EXISTS (
        SELECT FROM unnest(p_ids, p_external_ids, p_directions, p_bodies, p_sent, p_segments)
                    AS b (id, external_id, direction, body, sent_at, segments),
             LATERAL (SELECT m.id, m.direction, m.body, m.sent_at, m.segments FROM messages m
                      WHERE m.workspace_id = p_workspace AND m.conversation_id = p_conversation
                        AND m.external_id = b.external_id) m
        WHERE m.id <> b.id
          AND ((m.direction, m.body, m.sent_at) IS DISTINCT FROM (b.direction, b.body, b.sent_at)
               OR m.segments IS DISTINCT FROM
                  CASE WHEN c.channel = 'sms' THEN COALESCE(b.segments, 1) END)) THEN
        RAISE EXCEPTION 'external id reused' USING CONSTRAINT = 'append_same_message';
    END IF;

    IF v_fresh > 0 THEN
        IF v_out > 0 OR v_segments > 0 THEN
            SELECT max(u.total) FILTER (WHERE u.metric = 'messages'),
                   max(u.total) FILTER (WHERE u.metric = 'sms')
            INTO v_messages_total, v_sms_total
            FROM (SELECT array_agg(x.metric) AS metrics, array_agg(x.quantity) AS quantities,
                         array_agg(x.cap) AS caps
                  FROM (VALUES ('messages', v_out, p_caps[1]), ('sms', v_segments, p_caps[2]))
                       AS x (metric, quantity, cap)
                  WHERE x.quantity > 0) a,
                 add_usage(p_workspace, p_period, a.metrics, a.quantities, a.caps) u;
            IF v_out > 0 AND v_messages_total IS NULL THEN
                RAISE EXCEPTION 'usage limit' USING CONSTRAINT = 'append_within_limits',
                                                    DETAIL = 'messages';
            ELSIF v_segments > 0 AND v_sms_total IS NULL THEN
                RAISE EXCEPTION 'usage limit' USING CONSTRAINT = 'append_within_limits',
                                                    DETAIL = 'sms';
            END IF;
            IF p_fast_since IS NOT NULL AND (
                   EXISTS (SELECT FROM unnest(p_message_levels) l
                           WHERE v_messages_total - v_out < l AND l <= v_messages_total)
                OR EXISTS (SELECT FROM unnest(p_sms_levels) l
                           WHERE v_sms_total - v_segments < l AND l <= v_sms_total)
                OR NOT EXISTS (SELECT FROM audit_events e
                               WHERE e.workspace_id = p_workspace
                                 AND e.at >= p_fast_since
                                 AND e.action = p_accessed_action)) THEN
                RAISE EXCEPTION 'needs a transaction' USING CONSTRAINT = 'append_in_transaction';
            END IF;
        END IF;

        PERFORM roll_up_conversation_hours(
            p_workspace, COALESCE(c.agent_id, '00000000-0000-0000-0000-000000000000'),
            c.channel, v_at, v_zeros, v_zeros, v_in, v_outs, v_sms, v_zeros, v_zeros::int8[]);

        -- Batches may come out of order: when the first message moves earlier, the first
        -- reply is looked up again among the conversation's messages.
        UPDATE conversations u SET
            message_count = u.message_count + v_fresh,
            last_activity_at = GREATEST(u.last_activity_at, v_latest),
            first_inbound_at = LEAST(u.first_inbound_at, v_first_in),
            first_reply_at = CASE
                WHEN u.first_inbound_at IS NOT NULL
                     AND (v_first_in IS NULL OR v_first_in >= u.first_inbound_at)
                THEN LEAST(u.first_reply_at,
                           (SELECT min(r) FROM unnest(v_replies) r WHERE r >= u.first_inbound_at))
                ELSE (SELECT min(m.sent_at) FROM messages m
                      WHERE m.workspace_id = u.workspace_id AND m.conversation_id = u.id
                        AND m.direction = 'outbound' AND m.sent_at >= v_first_in) END
        WHERE u.workspace_id = p_workspace AND u.id = p_conversation
        RETURNING * INTO c;
    END IF;

    -- The batch as stored, in its order: as written, or for a retry, read by the whole key
    -- (each branch runs only in its case).
    RETURN QUERY
    SELECT c.id, c.workspace_id, c.external_id, c.agent_id, c.contact_id, c.channel,
           c.status, c.started_at, c.last_activity_at, c.closed_at, c.duration_seconds,
           c.message_count, c.first_inbound_at, c.first_reply_at, c.service_token_id,
           m.id, m.external_id, m.direction, m.body, m.sent_at, m.segments,
           COALESCE(v_out, 0), v_messages_total, COALESCE(v_segments, 0), v_sms_total
    FROM (SELECT f.id, f.external_id, f.direction, f.body, f.sent_at, f.segments,
                 array_position(p_external_ids, f.external_id)::int8 AS n
          FROM unnest(v_ids, v_external_ids, v_directions, v_bodies, v_sent, v_segments_of)
               AS f (id, external_id, direction, body, sent_at, segments)
          WHERE v_fresh = cardinality(p_ids)
          UNION ALL
          SELECT s.id, s.external_id, s.direction, s.body, s.sent_at, s.segments, b.n
          FROM unnest(p_external_ids) WITH ORDINALITY AS b (external_id, n),
               LATERAL (SELECT m.id, m.external_id, m.direction, m.body, m.sent_at, m.segments
                        FROM messages m
                        WHERE m.workspace_id = p_workspace
                          AND m.conversation_id = p_conversation
                          AND m.external_id = b.external_id) s
          WHERE v_fresh < cardinality(p_ids)) m
    ORDER BY m.n;
    PERFORM set_config('app.workspace_id', COALESCE(v_before, ''), true);
END
$$;
REVOKE ALL ON FUNCTION append_messages(uuid, uuid, uuid[], text[], text[], text[],
    timestamptz[], int2[], timestamptz, int4[], int8[], int8[], timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_messages(uuid, uuid, uuid[], text[], text[], text[],
    timestamptz[], int2[], timestamptz, int4[], int8[], int8[], timestamptz, text) TO linkai_app;
