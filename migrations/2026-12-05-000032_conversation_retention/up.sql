-- How long a workspace keeps its conversations (null: forever), and the scheduled round's
-- deletion of older ones in bounded batches. The analytics rollups and usage counters stay.
ALTER TABLE workspaces ADD COLUMN conversation_retention_days integer
    CHECK (conversation_retention_days BETWEEN 1 AND 3650);
COMMENT ON COLUMN workspaces.conversation_retention_days IS 'Conversations whose last activity is older than this many days are deleted with their messages; null keeps them forever.';

-- The round works across workspaces, so it runs as the owner (row-level security off, so
-- a role that does not bypass it fails loudly); it deletes only what each workspace's own
-- setting says is past keeping, oldest first, at most `batch` (1 to 1,000) at a time, and
-- never with a cutoff later than now.
CREATE FUNCTION prune_conversations(at timestamptz, batch integer) RETURNS integer
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
REVOKE ALL ON FUNCTION prune_conversations(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_conversations(timestamptz, integer) TO linkai_app;
