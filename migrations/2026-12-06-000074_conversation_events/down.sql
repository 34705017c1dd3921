DROP FUNCTION prune_conversation_events(timestamptz, integer);
DROP TRIGGER conversation_events ON conversations;
DROP FUNCTION record_conversation_event();
DROP TABLE conversation_events;
