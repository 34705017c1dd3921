-- Conversations between a workspace's agents and its contacts, written by the agent runtime
-- (a named service token), and the service tokens themselves.

-- Service tokens: not tenant data. The application reads them to authenticate the runtime
-- (a revoked token stops working on its next request); only the operator's CLI, as the
-- owner, adds or revokes them.
CREATE TABLE service_tokens (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
COMMENT ON TABLE service_tokens IS 'Named tokens the agent runtime calls the API with; only their SHA-256 is stored. Added and revoked by `linkai service-token`.';
GRANT SELECT ON service_tokens TO linkai_app;

CREATE TABLE conversations (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    external_id text NOT NULL CHECK (char_length(external_id) BETWEEN 1 AND 200),
    -- Deleting an agent or a contact keeps what was said (and counted).
    agent_id uuid REFERENCES resources (id) ON DELETE SET NULL,
    contact_id uuid REFERENCES resources (id) ON DELETE SET NULL,
    channel text NOT NULL CHECK (channel IN ('web_chat', 'sms', 'phone_call', 'email')),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    started_at timestamptz NOT NULL,
    last_activity_at timestamptz NOT NULL,
    closed_at timestamptz,
    duration_seconds integer CHECK (duration_seconds >= 0),
    message_count integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    first_inbound_at timestamptz,
    first_reply_at timestamptz,
    service_token_id uuid REFERENCES service_tokens (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, external_id),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX conversations_page ON conversations (workspace_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_agent ON conversations (agent_id, last_activity_at DESC, id DESC);
CREATE INDEX conversations_contact ON conversations (contact_id, last_activity_at DESC, id DESC);
COMMENT ON TABLE conversations IS 'One agent talking with one contact on one channel, identified by the runtime''s own id (external_id).';

-- btree_gin lets one GIN index answer "this workspace's messages matching these words".
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE messages (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    external_id text NOT NULL CHECK (char_length(external_id) BETWEEN 1 AND 200),
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 10000),
    sent_at timestamptz NOT NULL,
    segments smallint CHECK (segments BETWEEN 1 AND 100),
    search tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED,
    UNIQUE (conversation_id, external_id)
);
CREATE INDEX messages_page ON messages (workspace_id, conversation_id, sent_at, id);
CREATE INDEX messages_search ON messages USING gin (workspace_id, search);
COMMENT ON TABLE messages IS 'What was said in a conversation, in order; external_id is the runtime''s own id, so a retried append writes nothing twice.';

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON conversations USING (workspace_id = app_workspace_id());
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON messages USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON conversations, messages TO linkai_app;

-- The contact a runtime's address names is found by its normalised address.
CREATE INDEX resources_contact_phone ON resources (workspace_id, (data ->> 'phone'))
    WHERE kind = 'contact';
CREATE INDEX resources_contact_email ON resources (workspace_id, lower(data ->> 'email'))
    WHERE kind = 'contact';
