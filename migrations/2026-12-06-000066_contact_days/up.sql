-- Unique contacts from a rollup, as every other figure of the report: which contacts a
-- workspace's conversations started with, per UTC day, with a bit for each hour of the day
-- one started in. Days are UTC so that a workspace's time zone can change: the report
-- splits each day's hours among the workspace's own days (src/conversations/analytics.rs).
-- A day has at most one row per contact, so the report reads at most as many rows as it
-- would conversations (bench/run's busy workspace: 3,600 for 90 days, not 50,000).
-- Kept by a trigger on conversations, so every writer keeps it, the previous release's
-- during a rollout included; 000067 fills it for conversations written before. Rows stay
-- when their conversations are deleted, as the hourly counts do, and go with their contact.
SET LOCAL lock_timeout = '3s';

CREATE TABLE contact_days (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    day date NOT NULL,
    contact_id uuid NOT NULL,
    hours integer NOT NULL CHECK (hours > 0 AND hours < 1 << 24),
    PRIMARY KEY (workspace_id, day, contact_id),
    FOREIGN KEY (workspace_id, contact_id) REFERENCES resources (workspace_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE contact_days IS 'Per UTC day and contact: bit h of hours is set when a conversation with the contact started in hour h (UTC). Kept by note_contact_days(); analytics count unique contacts from it.';
CREATE INDEX contact_days_contact ON contact_days (workspace_id, contact_id);
ALTER TABLE contact_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_days FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON contact_days USING (workspace_id = app_workspace_id());
GRANT SELECT ON contact_days TO linkai_app;

-- Runs as the owner: it trusts only the rows the statement that fired it was allowed to
-- write, and the service's role may only read the rollup. Rows are taken in key order.
CREATE FUNCTION note_contact_days() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
BEGIN
    INSERT INTO public.contact_days AS d (workspace_id, day, contact_id, hours)
    SELECT workspace_id, (started_at AT TIME ZONE 'UTC')::date, contact_id,
           bit_or(1 << date_part('hour', started_at AT TIME ZONE 'UTC')::int)
    FROM came WHERE contact_id IS NOT NULL
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (workspace_id, day, contact_id) DO UPDATE SET hours = d.hours | EXCLUDED.hours
        WHERE d.hours | EXCLUDED.hours <> d.hours;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION note_contact_days() FROM PUBLIC;
CREATE TRIGGER conversations_contact_days AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS came FOR EACH STATEMENT EXECUTE FUNCTION note_contact_days();

-- A contact's days are who talked with the workspace when: they go with the conversations
-- of a workspace that keeps them a limited time. Deletes, in every such workspace, up to
-- `batch` days older than the oldest day its conversations are kept for, oldest first;
-- answers how many (the retention round calls it until fewer come back).
CREATE FUNCTION prune_contact_days(at timestamptz, batch integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    WITH bounds AS (
        SELECT least(at, now()) AS cutoff,
               least(greatest(coalesce(batch, 0), 0), 1000) AS size),
    doomed AS (
        SELECT d.workspace_id, d.day, d.contact_id FROM bounds, public.workspaces w
        JOIN LATERAL (
            SELECT d.workspace_id, d.day, d.contact_id FROM public.contact_days d, bounds b
            WHERE d.workspace_id = w.id
              AND d.day < ((b.cutoff - make_interval(days => w.conversation_retention_days))
                           AT TIME ZONE 'UTC')::date
            ORDER BY d.day, d.contact_id
            LIMIT (SELECT size FROM bounds)) d ON true
        WHERE w.conversation_retention_days IS NOT NULL
        LIMIT (SELECT size FROM bounds)),
    gone AS (DELETE FROM public.contact_days c USING doomed d
             WHERE c.workspace_id = d.workspace_id AND c.day = d.day
               AND c.contact_id = d.contact_id RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
REVOKE ALL ON FUNCTION prune_contact_days(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_contact_days(timestamptz, integer) TO linkai_app;
