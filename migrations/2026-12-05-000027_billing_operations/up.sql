-- One billing operation at a time per workspace (issue 26). A plan change is a row written
-- before Stripe is called and settled after: the row serialises changes (one open per
-- workspace), gives Stripe its idempotency key, and answers a retry of the same request.
CREATE TABLE billing_operations (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('select_plan')),
    -- What was asked, e.g. {"plan": "growth"}.
    intent jsonb NOT NULL,
    -- The caller's idempotency key, if it sent one.
    client_key text,
    state text NOT NULL CHECK (state IN ('open', 'settled', 'failed')),
    stripe_subscription_id text,
    -- What the request answered, for a retry with the same key.
    answer jsonb,
    created_at timestamptz NOT NULL,
    -- Until when the request running it may still be running it (LEASE).
    leased_until timestamptz NOT NULL,
    settled_at timestamptz,
    CHECK ((state = 'open') = (settled_at IS NULL))
);
COMMENT ON TABLE billing_operations IS 'Billing changes of a workspace (plan selection), one open at a time: written before Stripe is called, settled after; the Stripe idempotency key derives from the id.';
COMMENT ON COLUMN billing_operations.client_key IS 'The Idempotency-Key the client sent: a retry with it gets the first answer.';
CREATE UNIQUE INDEX billing_operations_one_open ON billing_operations (workspace_id) WHERE state = 'open';
CREATE UNIQUE INDEX billing_operations_client_key ON billing_operations (workspace_id, client_key);

ALTER TABLE billing_operations ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_operations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON billing_operations USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON billing_operations TO linkai_app;

-- The mirror's subscription state is ordered by when it was true in Stripe, whatever
-- brought it (an event's created, or when a read was sent): an older one never overwrites
-- a newer one (src/billing/sync.rs).
ALTER TABLE billing_accounts RENAME COLUMN subscription_event_at TO stripe_state_at;
COMMENT ON COLUMN billing_accounts.stripe_state_at IS 'When the subscription state mirrored was true in Stripe (an event''s created, or when the read that brought it was sent); older states are not written over it.';
