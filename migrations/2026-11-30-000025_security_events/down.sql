DROP FUNCTION prune_security_events(timestamptz);
DROP TABLE security_events;
