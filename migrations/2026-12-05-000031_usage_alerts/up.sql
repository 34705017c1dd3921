-- Usage alerts: at 80 % and 100 % of a limit, once per billing period, limit and threshold.
CREATE TABLE usage_alerts (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    metric text NOT NULL CHECK (metric IN ('messages', 'sms', 'agents', 'phone_numbers')),
    threshold smallint NOT NULL CHECK (threshold IN (80, 100)),
    limit_value integer NOT NULL CHECK (limit_value >= 0),
    used bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    emailed_at timestamptz,
    UNIQUE (workspace_id, period_start, metric, threshold, limit_value)
);
COMMENT ON TABLE usage_alerts IS 'A usage limit passed 80 % or reached 100 % in a billing period: recorded once (the unique key decides among racing writers), emailed to the Owner and Admins by its job.';
ALTER TABLE usage_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON usage_alerts USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON usage_alerts TO linkai_app;
