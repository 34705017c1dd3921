DELETE FROM account_tokens WHERE purpose = 'change_email';
ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_new_email_for_change_only;
ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_purpose_check;
ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check
    CHECK (purpose IN ('verify_email', 'reset_password'));
ALTER TABLE account_tokens DROP COLUMN new_email;
