DROP FUNCTION scrub_stripe_events_of(uuid);
REVOKE DELETE ON stripe_events FROM linkai_app;
DROP INDEX stripe_events_received_at;
DROP INDEX stripe_events_customer;
ALTER TABLE stripe_events DROP COLUMN stripe_customer_id;
DROP FUNCTION graces_needing_notice(timestamptz, interval, interval);
ALTER TABLE workspaces DROP COLUMN grace_notice_at;
ALTER TABLE workspaces DROP COLUMN payment_failed_at;
CREATE OR REPLACE FUNCTION workspaces_with_billing() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM billing_accounts $$;
ALTER TABLE billing_accounts DROP COLUMN synced_at;
DELETE FROM billing_operations WHERE kind <> 'select_plan';
ALTER TABLE billing_operations DROP CONSTRAINT billing_operations_kind_check;
ALTER TABLE billing_operations ADD CONSTRAINT billing_operations_kind_check
    CHECK (kind IN ('select_plan'));
