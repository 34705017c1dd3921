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

-- Workspaces past due before the grace period existed start theirs now.
UPDATE workspaces SET payment_failed_at = now()
    WHERE subscription_status IN ('past_due', 'unpaid') AND payment_failed_at IS NULL;

-- Each event names the Stripe customer it is about, so a deleted workspace's events can be
-- scrubbed; events stay outside any workspace (they arrive before one is known).
ALTER TABLE stripe_events ADD COLUMN stripe_customer_id text;
COMMENT ON COLUMN stripe_events.stripe_customer_id IS 'The Stripe customer the event is about, when it names one.';
CREATE INDEX stripe_events_customer ON stripe_events (stripe_customer_id);
CREATE INDEX stripe_events_received_at ON stripe_events (received_at);
-- Pruned past the retention period by the scheduled scan.
GRANT DELETE ON stripe_events TO linkai_app;

-- Scrubs the events about a deleted workspace's customer: the row stays (a redelivery is
-- still a no-op), what it said goes. Owner-run, so the app never writes payloads itself.
CREATE FUNCTION scrub_stripe_events_of(workspace uuid) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS
$$
    WITH scrubbed AS (
        UPDATE stripe_events e
        SET payload = jsonb_build_object('id', e.id, 'type', e.type, 'scrubbed', true)
        FROM billing_accounts a
        WHERE a.workspace_id = workspace AND e.stripe_customer_id = a.stripe_customer_id
          AND NOT (e.payload ? 'scrubbed')
        RETURNING 1
    )
    SELECT count(*) FROM scrubbed
$$;
REVOKE ALL ON FUNCTION scrub_stripe_events_of(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION scrub_stripe_events_of(uuid) TO linkai_app;
REVOKE ALL ON FUNCTION graces_needing_notice(timestamptz, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION graces_needing_notice(timestamptz, interval, interval) TO linkai_app;
