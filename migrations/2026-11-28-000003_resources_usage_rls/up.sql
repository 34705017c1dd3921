-- Workspace resources, usage metering, and row-level security as a second wall between
-- tenants: the application connects as `linkai_app`, which owns nothing and cannot bypass
-- RLS, and names the caller and the workspace it works in with `app.user_id` and
-- `app.workspace_id`. Migrations run as the owner.

CREATE TABLE resources (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('agent', 'contact', 'knowledge_base', 'form',
                                       'phone_number', 'calendar', 'integration')),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    data jsonb NOT NULL DEFAULT '{}',
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resources_page ON resources (workspace_id, kind, created_at, id);
CREATE UNIQUE INDEX resources_phone_number_unique
    ON resources (workspace_id, (data ->> 'number')) WHERE kind = 'phone_number';
COMMENT ON TABLE resources IS 'Everything a workspace creates (agents, contacts, knowledge bases, forms, phone numbers, calendars, integrations): common columns plus kind-specific fields in data, validated by the application.';

CREATE TABLE usage_events (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 200),
    metric text NOT NULL CHECK (metric IN ('messages', 'sms')),
    quantity integer NOT NULL CHECK (quantity > 0),
    period_start timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, idempotency_key)
);
COMMENT ON TABLE usage_events IS 'Metered usage reported by the agent runtime; the key makes a report count once.';

CREATE TABLE usage_counters (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    metric text NOT NULL CHECK (metric IN ('messages', 'sms')),
    total bigint NOT NULL DEFAULT 0 CHECK (total >= 0),
    PRIMARY KEY (workspace_id, period_start, metric)
);
COMMENT ON TABLE usage_counters IS 'Running totals of usage_events per billing period, so reads and limit checks are one row.';

-- The application role. Roles are cluster-wide, so it may exist already.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'linkai_app') THEN
        CREATE ROLE linkai_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END;
$$;
GRANT USAGE ON SCHEMA public TO linkai_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO linkai_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO linkai_app;
REVOKE ALL ON __diesel_schema_migrations FROM linkai_app;

CREATE FUNCTION app_user_id() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;
CREATE FUNCTION app_workspace_id() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('app.workspace_id', true), '')::uuid $$;

-- Rows of the current workspace only (memberships: also the caller's own, to list their
-- workspaces).
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON memberships
    USING (workspace_id = app_workspace_id() OR user_id = app_user_id())
    WITH CHECK (workspace_id = app_workspace_id());

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON invitations USING (workspace_id = app_workspace_id());

ALTER TABLE invitation_sends ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitation_sends FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON invitation_sends USING (workspace_id = app_workspace_id());

ALTER TABLE resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE resources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON resources USING (workspace_id = app_workspace_id());

ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON usage_events USING (workspace_id = app_workspace_id());

ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON usage_counters USING (workspace_id = app_workspace_id());

-- The few lookups that must cross tenants run as the owner and return no tenant data.
CREATE FUNCTION invitation_workspace_by_token(hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM invitations WHERE token_hash = hash $$;

CREATE FUNCTION invitation_workspace_by_id(invitation uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM invitations WHERE id = invitation $$;

CREATE FUNCTION invitation_sends_to_address(address text, since timestamptz) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT count(*) FROM invitation_sends WHERE email_lower = address AND sent_at > since $$;

-- The one-owner check must see the whole workspace whatever the session's context.
ALTER FUNCTION memberships_check_exactly_one_owner() SECURITY DEFINER;
ALTER FUNCTION memberships_check_exactly_one_owner() SET search_path = public;

-- The plan a workspace pays for (mirrored from Stripe by the billing sync); none during the trial.
ALTER TABLE workspaces ADD COLUMN plan text CHECK (plan IN ('starter', 'growth', 'scale'));
COMMENT ON COLUMN workspaces.plan IS 'The paid plan; null while on trial or without a subscription.';
