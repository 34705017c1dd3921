-- Stripe webhook events, recorded once by id before their processing is queued.

CREATE TABLE stripe_events (
    id text PRIMARY KEY,
    type text NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stripe_events IS 'Verified Stripe webhook events; the id makes a redelivery a no-op.';
GRANT SELECT, INSERT ON stripe_events TO linkai_app;

-- Which workspace a Stripe customer belongs to (webhooks arrive outside any workspace).
CREATE FUNCTION workspace_of_stripe_customer(customer text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM billing_accounts WHERE stripe_customer_id = customer $$;

-- Workspaces with a Stripe customer, for the reconciliation job.
CREATE FUNCTION workspaces_with_billing() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM billing_accounts $$;
