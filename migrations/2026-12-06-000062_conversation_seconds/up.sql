-- Analytics' first-response and close times as seconds kept on each conversation, so the
-- report reads them from an index (000064) rather than computing them for each of the
-- range's conversations: `date_part` over two intervals cost 4 of the busy workspace's
-- 21 ms (bench/run's 90 days, 50,000 conversations). Kept by a trigger, so every writer
-- keeps them, the previous release's during a rollout included; 000063 fills the rows
-- written before.
SET LOCAL lock_timeout = '3s';
ALTER TABLE conversations
    ADD COLUMN first_response_seconds double precision,
    ADD COLUMN close_seconds double precision;
COMMENT ON COLUMN conversations.first_response_seconds IS 'Seconds from the contact''s first message to the agent''s first reply after it; kept by conversation_seconds().';
COMMENT ON COLUMN conversations.close_seconds IS 'Seconds from start to close; kept by conversation_seconds().';

CREATE FUNCTION conversation_seconds() RETURNS trigger
LANGUAGE plpgsql AS
$$
BEGIN
    NEW.first_response_seconds := date_part('epoch', NEW.first_reply_at - NEW.first_inbound_at);
    NEW.close_seconds := date_part('epoch', NEW.closed_at - NEW.started_at);
    RETURN NEW;
END
$$;
CREATE TRIGGER conversations_seconds_came BEFORE INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION conversation_seconds();
-- An append sets the first message and reply whether or not they move: the trigger runs
-- only when one does.
CREATE TRIGGER conversations_seconds_moved BEFORE UPDATE ON conversations
    FOR EACH ROW
    WHEN (OLD.first_reply_at IS DISTINCT FROM NEW.first_reply_at
          OR OLD.first_inbound_at IS DISTINCT FROM NEW.first_inbound_at
          OR OLD.closed_at IS DISTINCT FROM NEW.closed_at
          OR OLD.started_at IS DISTINCT FROM NEW.started_at
          OR OLD.first_response_seconds IS DISTINCT FROM NEW.first_response_seconds
          OR OLD.close_seconds IS DISTINCT FROM NEW.close_seconds)
    EXECUTE FUNCTION conversation_seconds();
