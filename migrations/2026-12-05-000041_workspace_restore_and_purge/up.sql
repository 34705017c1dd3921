-- A deleted workspace can be restored by its Owner for a while (WORKSPACE_RESTORE_DAYS), then
-- it is purged: every row of it, in bounded batches, leaving one record outside it.

-- Whether deleting the workspace is what set its subscription to end at the period's end,
-- so restoring it undoes exactly that (and not an Owner's own cancellation).
ALTER TABLE billing_accounts ADD COLUMN ended_by_deletion boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN billing_accounts.ended_by_deletion IS 'The workspace''s deletion set its subscription to cancel at period end; a restore resumes it.';

CREATE INDEX workspaces_deleted ON workspaces (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE purged_workspaces (
    id uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL,
    purged_at timestamptz NOT NULL DEFAULT now(),
    rows_deleted bigint NOT NULL
);
COMMENT ON TABLE purged_workspaces IS 'One record per purged workspace, kept outside it: when it was deleted and purged, and how many rows went. No name, no member: nothing of its data.';
GRANT SELECT ON purged_workspaces TO linkai_app;

-- Deleted workspaces past `before`, oldest first, with their Stripe customer if any.
CREATE FUNCTION workspaces_to_purge(before timestamptz, max integer)
RETURNS TABLE (id uuid, deleted_at timestamptz, stripe_customer_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    SELECT w.id, w.deleted_at, a.stripe_customer_id
    FROM workspaces w LEFT JOIN billing_accounts a ON a.workspace_id = w.id
    WHERE w.deleted_at IS NOT NULL AND w.deleted_at < before
    ORDER BY w.deleted_at, w.id
    LIMIT max
$$;

-- Deletes up to `batch` rows of deleted workspace `ws` from one table with a
-- `workspace_id` column, and answers how many (0: none is left). Every such table is
-- found in the catalog, so a new one is purged without editing this. A table goes only
-- once no table referencing it holds rows of the workspace, so a batch never cascades
-- into an unbounded delete of its children.
CREATE FUNCTION purge_workspace_batch(ws uuid, batch integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
DECLARE
    tenant regclass;
    child regclass;
    blocked boolean;
    deleted bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM workspaces WHERE id = ws AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'workspace % is not deleted', ws USING ERRCODE = 'check_violation';
    END IF;
    FOR tenant IN
        SELECT c.oid::regclass FROM pg_class c
        JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p') AND c.relname <> 'workspaces'
        ORDER BY c.relname
    LOOP
        blocked := false;
        FOR child IN
            SELECT DISTINCT f.conrelid::regclass FROM pg_constraint f
            JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attname = 'workspace_id' AND NOT a.attisdropped
            WHERE f.contype = 'f' AND f.confrelid = tenant AND f.conrelid <> tenant
        LOOP
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE workspace_id = $1)', child)
                INTO blocked USING ws;
            EXIT WHEN blocked;
        END LOOP;
        CONTINUE WHEN blocked;
        EXECUTE format(
            'DELETE FROM %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s WHERE workspace_id = $1 LIMIT $2))',
            tenant, tenant) USING ws, batch;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        IF deleted > 0 THEN
            RETURN deleted;
        END IF;
    END LOOP;
    RETURN 0;
END;
$$;

-- The last step, once `purge_workspace_batch` finds nothing: the workspace's jobs still
-- waiting in the outbox, the workspace row, and the one record that stays.
CREATE FUNCTION purge_workspace_finish(ws uuid, rows_deleted bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
DECLARE
    deleted timestamptz;
BEGIN
    DELETE FROM workspaces WHERE id = ws AND deleted_at IS NOT NULL RETURNING deleted_at INTO deleted;
    IF deleted IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM outbox WHERE job ->> 'workspace_id' = ws::text;
    INSERT INTO purged_workspaces (id, deleted_at, rows_deleted)
    VALUES (ws, deleted, rows_deleted + 1) ON CONFLICT (id) DO NOTHING;
    RETURN true;
END;
$$;

REVOKE ALL ON FUNCTION workspaces_to_purge(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION workspaces_to_purge(timestamptz, integer) TO linkai_app;
REVOKE ALL ON FUNCTION purge_workspace_batch(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_workspace_batch(uuid, integer) TO linkai_app;
REVOKE ALL ON FUNCTION purge_workspace_finish(uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_workspace_finish(uuid, bigint) TO linkai_app;
