-- How long a workspace keeps its conversations (null: forever), and the scheduled round's
-- deletion of older ones in bounded batches. The analytics rollups and usage counters stay.
ALTER TABLE workspaces ADD COLUMN conversation_retention_days integer
    CHECK (conversation_retention_days BETWEEN 1 AND 3650);
COMMENT ON COLUMN workspaces.conversation_retention_days IS 'Conversations whose last activity is older than this many days are deleted with their messages; null keeps them forever.';

-- The round works across workspaces, so it runs as the owner; it deletes only what each
-- workspace's own setting says is past keeping, oldest first, at most `batch` at a time.
CREATE FUNCTION prune_conversations(at timestamptz, batch integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS
$$
    WITH doomed AS (
        SELECT c.id FROM workspaces w
        JOIN LATERAL (
            SELECT c.id, c.last_activity_at FROM conversations c
            WHERE c.workspace_id = w.id
              AND c.last_activity_at < at - make_interval(days => w.conversation_retention_days)
            ORDER BY c.last_activity_at DESC, c.id DESC
            LIMIT batch) c ON true
        WHERE w.conversation_retention_days IS NOT NULL
        LIMIT batch),
    gone AS (DELETE FROM conversations c USING doomed d WHERE c.id = d.id RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION prune_conversations(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_conversations(timestamptz, integer) TO linkai_app;
