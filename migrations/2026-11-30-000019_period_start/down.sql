ALTER TABLE billing_accounts DROP COLUMN current_period_start;
