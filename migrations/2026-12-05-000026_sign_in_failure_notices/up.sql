-- "Someone is trying to sign in" emails (issue 27): sent when an account crosses its hourly
-- ceiling of wrong passwords, at most once a day (the throttle `sign_in:notice` says when).
ALTER TABLE account_notices DROP CONSTRAINT account_notices_kind_check;
ALTER TABLE account_notices ADD CONSTRAINT account_notices_kind_check
    CHECK (kind IN ('password_changed', 'account_deleted', 'email_change_requested',
                    'sign_in_failures'));
