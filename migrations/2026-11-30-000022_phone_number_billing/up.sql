-- Phone numbers billed as a quantity on the workspace's subscription
-- (src/billing/phone_numbers.rs): each plan's product may carry a per-number price (price
-- metadata item=phone_number), synced with the plan; the account keeps the subscription
-- item that bills the workspace's numbers.
ALTER TABLE plan_prices ADD COLUMN phone_number_price_id text;
COMMENT ON COLUMN plan_prices.phone_number_price_id IS 'The per-phone-number price on the plan''s product; null: numbers are not billed on this plan.';
ALTER TABLE billing_accounts ADD COLUMN phone_numbers_item_id text;
COMMENT ON COLUMN billing_accounts.phone_numbers_item_id IS 'The subscription item whose quantity is the workspace''s phone numbers; null while none are billed.';
