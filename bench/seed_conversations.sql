-- The conversations data set (issue 23), loaded after the rest of bench/run has measured:
-- 10,000,000 messages in 2,000 workspaces. Workspace 1 is the busy one: 100,200
-- conversations of 20 messages (2,004,000); every other has 200 (4,000 messages), the
-- first of them open. Each
-- conversation is with one of the workspace's seeded agents and contacts, over the last
-- 180 days, its messages a minute apart and alternating in and out, in words drawn from a
-- small support vocabulary. The rollups are built from the rows, as the writes keep them
-- (the workspace's own hours and the conversation totals by their triggers).

BEGIN;

CREATE FUNCTION pg_temp.workspace_id(n integer) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid $$;

-- The agent runtime's token for the appends: `lksvc_bench`.
INSERT INTO service_tokens (id, name, token_hash)
VALUES (gen_random_uuid(), 'bench', sha256(convert_to('lksvc_bench', 'UTF8')));

-- Months of history, older than the two days the event stream keeps of conversations
-- (migration 000074): the stream's trigger is off while it loads.
ALTER TABLE conversations DISABLE TRIGGER conversation_events;

CREATE TEMP TABLE parts AS
SELECT workspace_id,
       array_agg(id ORDER BY id) FILTER (WHERE kind = 'agent') AS agents,
       array_agg(id ORDER BY id) FILTER (WHERE kind = 'contact') AS contacts
FROM resources GROUP BY workspace_id;

INSERT INTO conversations (id, workspace_id, external_id, agent_id, contact_id, channel,
                           status, started_at, last_activity_at, closed_at, message_count,
                           first_inbound_at, first_reply_at, duration_seconds)
SELECT gen_random_uuid(), w.id, 'seed-' || i,
       p.agents[1 + i % cardinality(p.agents)], p.contacts[1 + (i * 7) % cardinality(p.contacts)],
       (ARRAY['web_chat', 'sms', 'phone_call', 'email'])[1 + i % 4],
       -- The first of each workspace stays open: bench/run appends to it.
       CASE WHEN i = 1 THEN 'open' ELSE 'closed' END,
       t.at, t.at + interval '19 minutes',
       CASE WHEN i = 1 THEN NULL ELSE t.at + interval '20 minutes' END, 20,
       t.at, t.at + interval '1 minute' + interval '1 second' * (i % 90),
       CASE WHEN i % 4 = 2 THEN 300 + i % 600 END
FROM (SELECT n, pg_temp.workspace_id(n) AS id,
             CASE WHEN n = 1 THEN 100200 ELSE 200 END AS conversations
      FROM generate_series(1, 2000) AS n) AS w
JOIN parts p ON p.workspace_id = w.id,
     generate_series(1, w.conversations) AS i,
     LATERAL (SELECT date_trunc('second', now()) - interval '180 days'
                     * (i::float8 / w.conversations) AS at) AS t;

-- Without their indexes while loading: built once afterwards, as a restore would.
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_external_id_key;
DROP INDEX messages_workspace_conversation_external_id;
DROP INDEX messages_page;
DROP INDEX messages_words;

INSERT INTO messages (id, workspace_id, conversation_id, external_id, direction, body, sent_at,
                      segments)
SELECT gen_random_uuid(), c.workspace_id, c.id, 'm' || k,
       CASE WHEN k % 2 = 1 THEN 'inbound' ELSE 'outbound' END,
       v.words[1 + (h % 41)] || ' ' || v.words[1 + (h / 41 % 41)] || ' my ' ||
       v.words[1 + (h / 1681 % 41)] || ' for ' || v.words[1 + (h / 68921 % 41)] || ' please',
       c.started_at + interval '1 minute' * (k - 1),
       CASE WHEN c.channel = 'sms' THEN 1 + k % 2 END
FROM conversations c,
     generate_series(1, 20) AS k,
     LATERAL (SELECT abs(hashtext(c.id::text || k)) AS h) AS x,
     (SELECT ARRAY['booking', 'refund', 'table', 'order', 'delivery', 'invoice', 'password',
                   'account', 'cancel', 'change', 'appointment', 'parking', 'menu', 'price',
                   'discount', 'coupon', 'address', 'phone', 'email', 'receipt', 'payment',
                   'card', 'subscription', 'upgrade', 'downgrade', 'weekend', 'tomorrow',
                   'tonight', 'reservation', 'allergy', 'vegan', 'gluten', 'birthday',
                   'party', 'group', 'window', 'terrace', 'late', 'early', 'help',
                   'question'] AS words) AS v;

ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_external_id_key
    UNIQUE (conversation_id, external_id);
CREATE UNIQUE INDEX messages_workspace_conversation_external_id
    ON messages (workspace_id, conversation_id, external_id);
CREATE INDEX messages_page ON messages (workspace_id, conversation_id, sent_at, id);
CREATE INDEX messages_words ON messages USING gin (workspace_words(workspace_id, search))
    WITH (fastupdate = off);

INSERT INTO conversation_hours (workspace_id, hour, agent_id, channel, started, closed,
                                messages_in, messages_out, sms_segments, calls, call_seconds)
SELECT workspace_id, hour, agent_id, channel, sum(started), sum(closed), sum(messages_in),
       sum(messages_out), sum(sms_segments), sum(calls), sum(call_seconds)
FROM (
    SELECT workspace_id, date_trunc('hour', started_at, 'UTC') AS hour, agent_id, channel,
           1 AS started, 0 AS closed, 0 AS messages_in, 0 AS messages_out, 0 AS sms_segments,
           (channel = 'phone_call')::int AS calls, 0 AS call_seconds
    FROM conversations
    UNION ALL
    SELECT workspace_id, date_trunc('hour', closed_at, 'UTC'), agent_id, channel, 0, 1, 0, 0,
           0, 0, COALESCE(duration_seconds, 0)
    FROM conversations WHERE closed_at IS NOT NULL
    UNION ALL
    SELECT m.workspace_id, date_trunc('hour', m.sent_at, 'UTC'), c.agent_id, c.channel, 0, 0,
           (m.direction = 'inbound')::int, (m.direction = 'outbound')::int,
           COALESCE(m.segments, 0), 0, 0
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
) AS tallies
GROUP BY workspace_id, hour, agent_id, channel;

ALTER TABLE conversations ENABLE TRIGGER conversation_events;

COMMIT;

VACUUM ANALYZE conversations;
VACUUM ANALYZE messages;
VACUUM ANALYZE conversation_hours;
VACUUM ANALYZE workspace_conversation_hours;
VACUUM ANALYZE conversation_totals;
