ALTER TABLE invoices DROP COLUMN invoice_pdf;
ALTER TABLE billing_accounts DROP COLUMN details;
