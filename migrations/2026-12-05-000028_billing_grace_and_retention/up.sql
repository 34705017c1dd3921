-- Billing, issue 26 (second part): phone numbers' item changes are billing operations too;
-- the reconciliation goes least recently synced first; past due has a grace period; Stripe
-- events are kept for a retention period and scrubbed with what they are about.

ALTER TABLE billing_operations DROP CONSTRAINT billing_operations_kind_check;
ALTER TABLE billing_operations ADD CONSTRAINT billing_operations_kind_check
    CHECK (kind IN ('select_plan', 'phone_numbers'));

ALTER TABLE billing_accounts ADD COLUMN synced_at timestamptz;
COMMENT ON COLUMN billing_accounts.synced_at IS 'When the workers last re-read the workspace''s billing from Stripe; the reconciliation takes the least recent first.';

-- Least recently synced first: a round cut short (its deadline, a worker that died) is
-- taken over where it stopped by the next one.
CREATE OR REPLACE FUNCTION workspaces_with_billing() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM billing_accounts ORDER BY synced_at NULLS FIRST, workspace_id $$;

ALTER TABLE workspaces ADD COLUMN payment_failed_at timestamptz;
ALTER TABLE workspaces ADD COLUMN grace_notice_at timestamptz;
COMMENT ON COLUMN workspaces.payment_failed_at IS 'When the subscription entered a failed-payment status (past due, unpaid); the grace period runs from here. Cleared when it leaves.';
COMMENT ON COLUMN workspaces.grace_notice_at IS 'When the "becomes read-only soon" email was queued for this failure spell.';

-- Past-due workspaces whose grace period ends within `notice` of `now` and have not been
-- told: ids only, for the scheduled scan that runs outside any workspace.
CREATE FUNCTION graces_needing_notice(now timestamptz, grace interval, notice interval)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$
    SELECT id FROM workspaces
    WHERE subscription_status = 'past_due' AND deleted_at IS NULL
      AND grace_notice_at IS NULL AND payment_failed_at + grace - notice <= now
$$;

ALTER TABLE stripe_events ADD COLUMN workspace_id uuid;
COMMENT ON COLUMN stripe_events.workspace_id IS 'The workspace the event is about, when known: its events are scrubbed when it is deleted.';
CREATE INDEX stripe_events_workspace ON stripe_events (workspace_id);
CREATE INDEX stripe_events_received_at ON stripe_events (received_at);
-- Scrubbing keeps the row (a redelivery stays a no-op) and drops what it said.
GRANT UPDATE (payload), DELETE ON stripe_events TO linkai_app;
