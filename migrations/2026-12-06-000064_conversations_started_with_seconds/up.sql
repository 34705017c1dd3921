-- Analytics read the range's conversations from this index alone: their contacts and the
-- seconds 000062 keeps, not the times they are computed from. Built while they are
-- written; 000065 drops the index it replaces.
CREATE INDEX CONCURRENTLY IF NOT EXISTS conversations_started_seconds
    ON conversations (workspace_id, started_at)
    INCLUDE (contact_id, agent_id, channel, first_response_seconds, close_seconds);
