-- The workspace's mirror of its Stripe customer and subscription. Stripe is the source of
-- truth for money; these columns are what we last saw there.

CREATE TABLE billing_accounts (
    workspace_id uuid PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    stripe_customer_id text NOT NULL UNIQUE,
    subscription_id text UNIQUE,
    subscription_status text,
    current_period_end timestamptz,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE billing_accounts IS 'One Stripe customer per workspace, and the subscription as last seen in Stripe.';

ALTER TABLE billing_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON billing_accounts USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON billing_accounts TO linkai_app;

-- The subscription's status as last mirrored, kept on the workspace so every request can
-- derive the billing status (and read-only) from the row it already loads.
ALTER TABLE workspaces ADD COLUMN subscription_status text;
COMMENT ON COLUMN workspaces.subscription_status IS 'Stripe subscription status as last seen (active, past_due, canceled, ...); null without a subscription.';
