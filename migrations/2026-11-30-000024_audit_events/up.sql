-- The audit log (src/audit/mod.rs): one row per change of a workspace, appended in the
-- transaction that makes the change. The app role may read and append, never change or
-- delete: retention is applied by an owner-run function.
CREATE TABLE audit_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    at timestamptz NOT NULL,
    actor_kind text NOT NULL CHECK (actor_kind IN ('user', 'access_token', 'service', 'stripe', 'system')),
    actor_id uuid,
    action text NOT NULL,
    target_kind text NOT NULL,
    target_id text NOT NULL,
    changes jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id uuid,
    client text
);
CREATE INDEX audit_events_page ON audit_events (workspace_id, at DESC, id DESC);
CREATE INDEX audit_events_age ON audit_events (at);
COMMENT ON TABLE audit_events IS 'What changed in a workspace, who changed it (principal kind and id), from which request and address; append-only.';

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON audit_events USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT ON audit_events TO linkai_app;

-- Deletes events from before `before` in every workspace (the retention), for the
-- scheduled scan, which runs outside any workspace.
CREATE FUNCTION prune_audit_events(before timestamptz) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS
$$
    WITH gone AS (DELETE FROM audit_events WHERE at < before RETURNING 1)
    SELECT count(*) FROM gone
$$;
