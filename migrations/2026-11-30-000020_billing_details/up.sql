-- Billing details as set with updateBillingDetails (billing email, company, address, tax
-- id; src/billing/details.rs), mirrored from what was written to the Stripe customer so
-- reading them makes no Stripe call; and each invoice's PDF link.
ALTER TABLE billing_accounts ADD COLUMN details jsonb;
ALTER TABLE invoices ADD COLUMN invoice_pdf text;
