ALTER TABLE workspaces DROP COLUMN subscription_status;
DROP TABLE billing_accounts;
