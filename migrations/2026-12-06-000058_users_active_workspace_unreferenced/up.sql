-- Ready to shard (tests/it/citus.rs): on Citus, `users` is a reference table, copied to
-- every node, and a reference table cannot hold a foreign key to a distributed one
-- (`workspaces`). The account's last workspace is a hint a frontend restores, read only
-- through the caller's memberships (src/auth/graphql.rs), so it needs no key: the purge,
-- which deletes workspaces, clears it instead of ON DELETE SET NULL.
ALTER TABLE users DROP CONSTRAINT users_active_workspace_id_fkey;

CREATE OR REPLACE FUNCTION purge_workspace_finish(ws uuid, rows_deleted bigint, customer text) RETURNS boolean
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
    UPDATE users SET active_workspace_id = NULL WHERE active_workspace_id = ws;
    DELETE FROM outbox WHERE job ->> 'workspace_id' = ws::text;
    UPDATE stripe_events e
    SET payload = jsonb_build_object('id', e.id, 'type', e.type, 'scrubbed', true)
    WHERE customer IS NOT NULL AND e.stripe_customer_id = customer AND NOT (e.payload ? 'scrubbed');
    INSERT INTO purged_workspaces (id, deleted_at, rows_deleted, stripe_customer_id)
    VALUES (ws, deleted, rows_deleted + 1, customer) ON CONFLICT (id) DO NOTHING;
    RETURN true;
END;
$$;
