-- A deleted workspace can be restored by its Owner for a while (WORKSPACE_RESTORE_DAYS), then
-- it is purged: every row of it, in bounded batches, leaving one record outside it.

-- Whether deleting the workspace is what set its subscription to end at the period's end,
-- so restoring it undoes exactly that (and not an Owner's own cancellation).
ALTER TABLE billing_accounts ADD COLUMN ended_by_deletion boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN billing_accounts.ended_by_deletion IS 'The workspace''s deletion set its subscription to cancel at period end; a restore resumes it.';

-- Set, under the row's lock and by the database's clock, when a purge begins: from then
-- on the workspace cannot be restored, whatever the clocks and settings of the processes.
ALTER TABLE workspaces ADD COLUMN purge_started_at timestamptz;
CREATE INDEX workspaces_deleted ON workspaces (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE purged_workspaces (
    id uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL,
    purged_at timestamptz NOT NULL DEFAULT now(),
    rows_deleted bigint NOT NULL,
    stripe_customer_id text
);
CREATE INDEX purged_workspaces_customer ON purged_workspaces (stripe_customer_id)
    WHERE stripe_customer_id IS NOT NULL;
COMMENT ON TABLE purged_workspaces IS 'One record per purged workspace, kept outside it: when it was deleted and purged, how many rows the finishing run deleted, and its deleted Stripe customer''s id (so Stripe''s later events about it are scrubbed). No name, no member: nothing of its data.';

-- Stripe sends events about a purged workspace's customer after the purge (its deletion's
-- own, with the customer's email): they are recorded scrubbed, as the purge scrubbed the
-- earlier ones.
CREATE FUNCTION scrub_events_of_purged_customers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stripe_customer_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM purged_workspaces WHERE stripe_customer_id = NEW.stripe_customer_id
    ) THEN
        NEW.payload := jsonb_build_object('id', NEW.id, 'type', NEW.type, 'scrubbed', true);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER scrub_events_of_purged_customers BEFORE INSERT ON stripe_events
    FOR EACH ROW EXECUTE FUNCTION scrub_events_of_purged_customers();
GRANT SELECT ON purged_workspaces TO linkai_app;

-- The restore window, as the purge functions take it: never under a day, whatever the
-- caller passes.
CREATE FUNCTION purge_window(restore_window interval) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT greatest(restore_window, interval '1 day') $$;

-- Deleted workspaces past the window, oldest first, with their Stripe customer if any.
CREATE FUNCTION workspaces_to_purge(restore_window interval, max integer)
RETURNS TABLE (id uuid, stripe_customer_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    SELECT w.id, a.stripe_customer_id
    FROM workspaces w LEFT JOIN billing_accounts a ON a.workspace_id = w.id
    WHERE w.deleted_at IS NOT NULL AND w.deleted_at < now() - purge_window(restore_window)
    ORDER BY w.deleted_at, w.id
    LIMIT least(greatest(max, 0), 100)
$$;

-- Begins the purge of `ws` if it is deleted and past the window (true), so no restore can
-- follow; true again for a purge begun before.
CREATE FUNCTION purge_workspace_start(ws uuid, restore_window interval) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    UPDATE workspaces SET purge_started_at = coalesce(purge_started_at, now())
    WHERE id = ws AND deleted_at IS NOT NULL
      AND deleted_at < now() - purge_window(restore_window)
    RETURNING true
$$;

-- The ordinary tables with a `workspace_id` column (partitions included, each on its own,
-- partitioned parents not), from the catalog: a table added later is purged without
-- editing this.
CREATE FUNCTION tenant_tables() RETURNS SETOF regclass
LANGUAGE sql STABLE AS
$$
    SELECT c.oid::regclass FROM pg_class c
    JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped
    WHERE c.relkind = 'r' AND c.relname <> 'workspaces'
    ORDER BY c.relname
$$;

-- Deletes up to `batch` rows of `ws`, whose purge has begun, from one tenant table, and
-- answers how many (0: none is left anywhere). A table goes only once no table referencing
-- it holds rows of the workspace, so a batch never cascades into an unbounded delete of
-- its children; rows that only a cycle of references could free are an error, not a 0.
CREATE FUNCTION purge_workspace_batch(ws uuid, batch integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
DECLARE
    tenant regclass;
    child regclass;
    blocked boolean;
    waiting boolean := false;
    deleted bigint;
BEGIN
    PERFORM 1 FROM workspaces WHERE id = ws AND purge_started_at IS NOT NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the purge of workspace % has not begun', ws USING ERRCODE = 'check_violation';
    END IF;
    FOR tenant IN SELECT tenant_tables() LOOP
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
        IF blocked THEN
            waiting := true;
            CONTINUE;
        END IF;
        EXECUTE format(
            'DELETE FROM %s WHERE workspace_id = $1 AND ctid = ANY (ARRAY('
            'SELECT ctid FROM %s WHERE workspace_id = $1 LIMIT $2))',
            tenant, tenant) USING ws, least(greatest(batch, 1), 10000);
        GET DIAGNOSTICS deleted = ROW_COUNT;
        IF deleted > 0 THEN
            RETURN deleted;
        END IF;
    END LOOP;
    IF waiting THEN
        RAISE EXCEPTION 'workspace %: rows left that reference each other', ws;
    END IF;
    RETURN 0;
END;
$$;

-- The last step, once `purge_workspace_batch` found nothing: the workspace's jobs still
-- waiting in the outbox, the events Stripe sent about its customer meanwhile, the
-- workspace row, and the one record that stays. Refused while any tenant table still
-- holds a row of it.
CREATE FUNCTION purge_workspace_finish(ws uuid, rows_deleted bigint, customer text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
DECLARE
    tenant regclass;
    left_over boolean;
    deleted timestamptz;
BEGIN
    PERFORM 1 FROM workspaces WHERE id = ws AND purge_started_at IS NOT NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR tenant IN SELECT tenant_tables() LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE workspace_id = $1)', tenant)
            INTO left_over USING ws;
        IF left_over THEN
            RAISE EXCEPTION 'workspace %: rows left in %', ws, tenant USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    DELETE FROM workspaces WHERE id = ws RETURNING deleted_at INTO deleted;
    DELETE FROM outbox WHERE job ->> 'workspace_id' = ws::text;
    UPDATE stripe_events e
    SET payload = jsonb_build_object('id', e.id, 'type', e.type, 'scrubbed', true)
    WHERE customer IS NOT NULL AND e.stripe_customer_id = customer AND NOT (e.payload ? 'scrubbed');
    INSERT INTO purged_workspaces (id, deleted_at, rows_deleted, stripe_customer_id)
    VALUES (ws, deleted, rows_deleted + 1, customer) ON CONFLICT (id) DO NOTHING;
    RETURN true;
END;
$$;

REVOKE ALL ON FUNCTION workspaces_to_purge(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION workspaces_to_purge(interval, integer) TO linkai_app;
REVOKE ALL ON FUNCTION purge_workspace_start(uuid, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_workspace_start(uuid, interval) TO linkai_app;
REVOKE ALL ON FUNCTION purge_workspace_batch(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_workspace_batch(uuid, integer) TO linkai_app;
REVOKE ALL ON FUNCTION purge_workspace_finish(uuid, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_workspace_finish(uuid, bigint, text) TO linkai_app;
