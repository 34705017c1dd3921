-- Sign-in protection without lockout (issue 27).

-- The networks (IPv4 /24, IPv6 /64) each account has signed in from lately: attempts from
-- them skip the per-account ceiling that paces strangers, so guesses from elsewhere never
-- slow or refuse the owner at home.
CREATE TABLE sign_in_networks (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network text NOT NULL,
    last_signed_in_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, network)
);
COMMENT ON TABLE sign_in_networks IS 'Networks (IPv4 /24, IPv6 /64) an account began a session from, with the last time; forgotten after 90 days.';
COMMENT ON COLUMN sign_in_networks.network IS 'As src/throttle.rs network_subject writes it, e.g. 203.0.113.0/24.';
GRANT SELECT, INSERT, UPDATE, DELETE ON sign_in_networks TO linkai_app;

-- "Someone is trying to sign in" emails: sent when strangers cross an account's hourly
-- ceiling with a wrong password, at most once a day (the throttle `sign_in:notice`).
ALTER TABLE account_notices DROP CONSTRAINT account_notices_kind_check;
ALTER TABLE account_notices ADD CONSTRAINT account_notices_kind_check
    CHECK (kind IN ('password_changed', 'account_deleted', 'email_change_requested',
                    'sign_in_failures'));
