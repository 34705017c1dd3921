SET LOCAL lock_timeout = '3s';
CREATE INDEX IF NOT EXISTS conversations_started ON conversations (workspace_id, started_at)
    INCLUDE (contact_id, agent_id, channel, first_inbound_at, first_reply_at, closed_at);
