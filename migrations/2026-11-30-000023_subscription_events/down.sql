ALTER TABLE billing_accounts DROP COLUMN subscription_event_at;
