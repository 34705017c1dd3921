ALTER TABLE billing_accounts RENAME COLUMN stripe_state_at TO subscription_event_at;
COMMENT ON COLUMN billing_accounts.subscription_event_at IS 'Stripe''s created time of the newest subscription event applied; older events are skipped.';
DROP TABLE billing_operations;
