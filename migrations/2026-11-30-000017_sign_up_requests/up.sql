-- Sign-ups waiting for their address to be proven. `signUp` records one whatever the
-- address (so its answer cannot tell whether an account has it); the worker emails the
-- link that finishes it (`completeSignUp`), or, when an account has the address already,
-- tells that account's owner instead. No account exists until the link is followed, so
-- nobody can hold an address they cannot read mail at.
CREATE TABLE sign_up_requests (
    id uuid PRIMARY KEY,
    email text NOT NULL CHECK (char_length(email) <= 320),
    name text NOT NULL,
    -- An Argon2id hash, as users.password_hash; deleted with the row.
    password_hash text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- SHA-256 of the emailed link's token, set when the worker mints it.
    token_hash bytea UNIQUE,
    -- When a worker took the request's email on (counted against the address's hourly
    -- share, under a lock per address), and when the email went out.
    claimed_at timestamptz,
    sent_at timestamptz
);
CREATE INDEX sign_up_requests_email ON sign_up_requests (lower(email), claimed_at);
CREATE INDEX sign_up_requests_requested_at ON sign_up_requests (requested_at);
COMMENT ON TABLE sign_up_requests IS 'Sign-ups until their emailed link is followed; deleted when followed or two days after the request.';
GRANT SELECT, INSERT, UPDATE, DELETE ON sign_up_requests TO linkai_app;
