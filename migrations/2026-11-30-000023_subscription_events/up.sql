-- When (Stripe's `created`) the subscription event last applied to the account happened:
-- a subscription event's copy of the subscription is mirrored only if it is newer, so
-- Stripe's events may arrive in any order (src/billing/sync.rs).
ALTER TABLE billing_accounts ADD COLUMN subscription_event_at timestamptz;
COMMENT ON COLUMN billing_accounts.subscription_event_at IS 'Stripe''s created time of the newest subscription event applied; older events are skipped.';
