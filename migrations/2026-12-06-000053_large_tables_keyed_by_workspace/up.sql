-- Ready to shard (tests/it/citus.rs): resources, conversations and messages get keys that
-- lead with workspace_id, and the foreign keys between them carry it. The key indexes were
-- built concurrently (migrations 000047 to 000050); here they become keys, which builds
-- nothing, and the foreign keys are added unchecked (migration 000054 checks them while
-- writes go on). So the tables are locked only for these catalog changes, all at once
-- from the first statement: a lock that cannot be had within the timeout fails the
-- migration, to be run again, rather than queueing every request behind it
-- (docs/deploy.md).
--
-- The previous release's appends name the old unique key of messages (conversation_id,
-- external_id): it stays until the next release (tests/it/citus.rs, UNTIL_NEXT_RELEASE).
SET LOCAL lock_timeout = '3s';
LOCK TABLE resources, conversations, messages IN ACCESS EXCLUSIVE MODE;

ALTER TABLE conversations DROP CONSTRAINT conversations_agent_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_contact_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey;

ALTER TABLE resources DROP CONSTRAINT resources_pkey;
ALTER TABLE resources ADD CONSTRAINT resources_pkey PRIMARY KEY USING INDEX resources_workspace_id_id;
ALTER TABLE conversations DROP CONSTRAINT conversations_pkey;
ALTER TABLE conversations ADD CONSTRAINT conversations_pkey
    PRIMARY KEY USING INDEX conversations_workspace_id_id;
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY USING INDEX messages_workspace_id_id;

-- Deleting an agent or a contact keeps its conversations (SET NULL on its column only,
-- which needs PostgreSQL 15).
ALTER TABLE conversations ADD CONSTRAINT conversations_agent_fkey
    FOREIGN KEY (workspace_id, agent_id) REFERENCES resources (workspace_id, id)
    ON DELETE SET NULL (agent_id) NOT VALID;
ALTER TABLE conversations ADD CONSTRAINT conversations_contact_fkey
    FOREIGN KEY (workspace_id, contact_id) REFERENCES resources (workspace_id, id)
    ON DELETE SET NULL (contact_id) NOT VALID;
ALTER TABLE messages ADD CONSTRAINT messages_conversation_fkey
    FOREIGN KEY (workspace_id, conversation_id) REFERENCES conversations (workspace_id, id)
    ON DELETE CASCADE NOT VALID;

-- The pruner deleted by id alone, which the new key cannot find without reading it all.
CREATE OR REPLACE FUNCTION prune_conversations(at timestamptz, batch integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    WITH bounds AS (
        SELECT least(at, now()) AS cutoff,
               least(greatest(coalesce(batch, 0), 0), 1000) AS size),
    doomed AS (
        SELECT c.workspace_id, c.id FROM bounds, public.workspaces w
        JOIN LATERAL (
            SELECT c.workspace_id, c.id, c.last_activity_at FROM public.conversations c, bounds b
            WHERE c.workspace_id = w.id
              AND c.last_activity_at < b.cutoff - make_interval(days => w.conversation_retention_days)
            ORDER BY c.last_activity_at, c.id
            LIMIT (SELECT size FROM bounds)) c ON true
        WHERE w.conversation_retention_days IS NOT NULL
        LIMIT (SELECT size FROM bounds)),
    gone AS (DELETE FROM public.conversations c USING doomed d
                WHERE c.workspace_id = d.workspace_id AND c.id = d.id RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
