-- Analytics: the workspace's time zone (its days), and hourly rollups of conversations and
-- messages kept by the transactions that write them.

ALTER TABLE workspaces ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'
    CHECK (char_length(time_zone) BETWEEN 1 AND 64);
COMMENT ON COLUMN workspaces.time_zone IS 'IANA name: whose days analytics count in.';

CREATE TABLE conversation_hours (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    hour timestamptz NOT NULL,
    -- The agent when it was counted (the nil id once it is gone): kept, as the counts are.
    agent_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('web_chat', 'sms', 'phone_call', 'email')),
    started integer NOT NULL DEFAULT 0,
    closed integer NOT NULL DEFAULT 0,
    messages_in integer NOT NULL DEFAULT 0,
    messages_out integer NOT NULL DEFAULT 0,
    sms_segments integer NOT NULL DEFAULT 0,
    calls integer NOT NULL DEFAULT 0,
    call_seconds bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, hour, agent_id, channel)
);
COMMENT ON TABLE conversation_hours IS 'Per UTC hour, agent and channel: conversations started and closed, messages in and out, SMS segments, calls and their seconds. Written with the rows they count; analytics read these, never the messages.';
ALTER TABLE conversation_hours ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_hours FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON conversation_hours USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON conversation_hours TO linkai_app;

-- Unique contacts and response times read the conversations started in a range.
CREATE INDEX conversations_started ON conversations (workspace_id, started_at)
    INCLUDE (contact_id, agent_id, channel, first_inbound_at, first_reply_at, closed_at);
