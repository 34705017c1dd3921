-- Attempt counters for throttling (src/throttle.rs), shared by every replica: fixed windows
-- (`hits` since `window_start`) and, for sign-in per account, consecutive failures with a
-- growing `blocked_until`. Keys name the rule and its subject (`sign_up:ip:203.0.113.7`).
CREATE TABLE throttles (
    key text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    hits integer NOT NULL CHECK (hits > 0),
    blocked_until timestamptz
);
COMMENT ON TABLE throttles IS 'Rate-limit counters by rule and subject; rows past their window are deleted by the workers.';
CREATE INDEX throttles_window_start ON throttles (window_start);
GRANT SELECT, INSERT, UPDATE, DELETE ON throttles TO linkai_app;

-- Invitations are no longer capped per address across workspaces (one tenant could spend
-- that cap and lock an address out of everyone's invitations): the counting function goes.
DROP FUNCTION invitation_sends_to_address(text, timestamptz);
