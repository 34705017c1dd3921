ALTER TABLE billing_accounts DROP COLUMN phone_numbers_item_id;
ALTER TABLE plan_prices DROP COLUMN phone_number_price_id;
