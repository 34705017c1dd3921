-- Usage counts per billing period (issue 16): the subscription's current period as Stripe
-- reports it, start as well as end.
ALTER TABLE billing_accounts ADD COLUMN current_period_start timestamptz;
