-- Live updates (issue 25) for conversations: a conversation started or closed, and
-- messages added, reach `workspaceEvents` subscribers in the workspace's stream.
--
-- Not in the audit log: the runtime's writes are not audited (docs/security.md), and a
-- busy workspace appends many times a second. So these events have a table of their
-- own, numbered in the same stream as the audit events (migration 000069's counter and
-- trigger), and kept only as long as a cursor may resume from them: two days, twice the
-- replay window (src/live/model.rs), deleted in batches by the conversations' retention
-- round (`prune_conversation_events`).
--
-- Written by a trigger on `conversations`, so that every writer (the append's one
-- statement, migration 000061, a start, a close) records them without another statement.
-- The trigger is deferred to the commit: numbering an event locks the workspace's counter
-- until the commit, and it must be the last lock a transaction takes. A start or a close
-- rolls up hour rows after it writes the conversation, and an append rolls them up before;
-- numbering at the write would lock the counter then the hours in one, the hours then the
-- counter in the other, and the two could deadlock.
--
-- The trigger on `conversations` locks that table: briefly, or fail (docs/deploy.md).
SET LOCAL lock_timeout = '3s';

-- No foreign key to the conversation: an event outlives a deleted conversation (its target
-- is then null), and a cascade would take numbers out of the middle of the stream, which
-- a cursor's resumption takes to be pruned only from its oldest (src/live/model.rs).
CREATE TABLE conversation_events (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    at timestamptz NOT NULL DEFAULT now(),
    action text NOT NULL
        CHECK (action IN ('conversation.started', 'conversation.closed', 'conversation.messages_added')),
    conversation_id uuid NOT NULL,
    changes jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (workspace_id, seq)
);
COMMENT ON TABLE conversation_events IS 'Conversations started and closed, and messages added: the workspace''s event stream (with audit_events), kept two days; not audited.';
CREATE INDEX conversation_events_age ON conversation_events (at);
ALTER TABLE conversation_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON conversation_events USING (workspace_id = app_workspace_id());
-- Only read: the trigger writes them, so no request can forge one.
GRANT SELECT ON conversation_events TO linkai_app;

CREATE TRIGGER number_workspace_event BEFORE INSERT ON conversation_events
    FOR EACH ROW EXECUTE FUNCTION number_workspace_event();

-- Run as the owner, across row-level security: at the commit, `app.workspace_id` may be
-- another's or none (an append resets it when its statement ends).
CREATE FUNCTION record_conversation_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS $$
DECLARE
    v_action text;
    v_changes jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_action := 'conversation.started';
        v_changes := jsonb_build_object('channel', NEW.channel);
    ELSIF NEW.status = 'closed' AND OLD.status <> 'closed' THEN
        v_action := 'conversation.closed';
        v_changes := jsonb_build_object('channel', NEW.channel);
    ELSIF NEW.message_count > OLD.message_count THEN
        v_action := 'conversation.messages_added';
        v_changes := jsonb_build_object('messages', NEW.message_count - OLD.message_count);
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO public.conversation_events (workspace_id, action, conversation_id, changes)
    VALUES (NEW.workspace_id, v_action, NEW.id, v_changes);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION record_conversation_event() FROM PUBLIC;
CREATE CONSTRAINT TRIGGER conversation_events
    AFTER INSERT OR UPDATE OF status, message_count ON conversations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION record_conversation_event();

-- Deletes up to `p_batch` (at most 10,000) events written before `p_at` less two days, in
-- every workspace; answers how many. For the retention round, which runs outside any
-- workspace.
CREATE FUNCTION prune_conversation_events(p_at timestamptz, p_batch integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    WITH doomed AS (
        SELECT e.workspace_id, e.seq FROM public.conversation_events e
        WHERE e.at < least(p_at, now()) - interval '2 days'
        ORDER BY e.at
        LIMIT least(greatest(coalesce(p_batch, 0), 0), 10000)),
    gone AS (DELETE FROM public.conversation_events e USING doomed d
             WHERE e.workspace_id = d.workspace_id AND e.seq = d.seq RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION prune_conversation_events(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_conversation_events(timestamptz, integer) TO linkai_app;
