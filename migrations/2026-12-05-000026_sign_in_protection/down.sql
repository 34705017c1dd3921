DELETE FROM account_notices WHERE kind = 'sign_in_failures';
ALTER TABLE account_notices DROP CONSTRAINT account_notices_kind_check;
ALTER TABLE account_notices ADD CONSTRAINT account_notices_kind_check
    CHECK (kind IN ('password_changed', 'account_deleted', 'email_change_requested'));
DROP TABLE sign_in_networks;
