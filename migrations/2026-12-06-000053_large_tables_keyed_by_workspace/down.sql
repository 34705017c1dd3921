CREATE OR REPLACE FUNCTION prune_conversations(at timestamptz, batch integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    WITH bounds AS (
        SELECT least(at, now()) AS cutoff,
               least(greatest(coalesce(batch, 0), 0), 1000) AS size),
    doomed AS (
        SELECT c.id FROM bounds, public.workspaces w
        JOIN LATERAL (
            SELECT c.id, c.last_activity_at FROM public.conversations c, bounds b
            WHERE c.workspace_id = w.id
              AND c.last_activity_at < b.cutoff - make_interval(days => w.conversation_retention_days)
            ORDER BY c.last_activity_at, c.id
            LIMIT (SELECT size FROM bounds)) c ON true
        WHERE w.conversation_retention_days IS NOT NULL
        LIMIT (SELECT size FROM bounds)),
    gone AS (DELETE FROM public.conversations c USING doomed d WHERE c.id = d.id RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

ALTER TABLE conversations DROP CONSTRAINT conversations_agent_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_contact_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_conversation_fkey;

-- Each key goes back to being the index its concurrent migration (000047 to 000049) built,
-- which that migration's down drops.
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
CREATE UNIQUE INDEX messages_workspace_id_id ON messages (workspace_id, id);
ALTER TABLE messages ADD PRIMARY KEY (id);
ALTER TABLE conversations DROP CONSTRAINT conversations_pkey;
CREATE UNIQUE INDEX conversations_workspace_id_id ON conversations (workspace_id, id);
ALTER TABLE conversations ADD PRIMARY KEY (id);
ALTER TABLE resources DROP CONSTRAINT resources_pkey;
CREATE UNIQUE INDEX resources_workspace_id_id ON resources (workspace_id, id);
ALTER TABLE resources ADD PRIMARY KEY (id);

ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE;
ALTER TABLE conversations ADD CONSTRAINT conversations_contact_id_fkey
    FOREIGN KEY (contact_id) REFERENCES resources (id) ON DELETE SET NULL;
ALTER TABLE conversations ADD CONSTRAINT conversations_agent_id_fkey
    FOREIGN KEY (agent_id) REFERENCES resources (id) ON DELETE SET NULL;
