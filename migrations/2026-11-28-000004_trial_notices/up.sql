-- Trial reminders (7, 3 and 1 days before the end) and the expiry notice: one row per
-- notice per workspace, inserted in the transaction that enqueues its email, so each is
-- sent once however many workers scan.

CREATE TABLE trial_notices (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    notice text NOT NULL CHECK (notice IN ('reminder_7', 'reminder_3', 'reminder_1', 'expired')),
    due_at timestamptz NOT NULL,
    emailed_at timestamptz,
    PRIMARY KEY (workspace_id, notice)
);
COMMENT ON TABLE trial_notices IS 'Trial notices recorded per workspace; emailed_at is set once the email went out.';

ALTER TABLE trial_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE trial_notices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON trial_notices USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON trial_notices TO linkai_app;

CREATE INDEX workspaces_trial_ending ON workspaces (trial_ends_at)
    WHERE plan IS NULL AND deleted_at IS NULL;

-- Workspaces whose trial ends within `horizon` of `now` and still lack their final notice:
-- ids only, for the scheduled scan that runs outside any workspace.
CREATE FUNCTION trials_needing_notice(now timestamptz, horizon interval)
RETURNS TABLE (workspace_id uuid, trial_ends_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$
    SELECT w.id, w.trial_ends_at FROM workspaces w
    WHERE w.plan IS NULL AND w.deleted_at IS NULL AND w.trial_ends_at <= now + horizon
      AND NOT EXISTS (SELECT 1 FROM trial_notices n WHERE n.workspace_id = w.id AND n.notice = 'expired')
$$;
