-- The security log (src/auth/security.rs): the account's own sign-ins, password and
-- address changes, sessions and tokens, appended in the transaction that makes the change.
-- Read by its account only (`me.securityLog`, filtered by user, like access_tokens); the
-- app role may read and append, never change or delete: retention is applied by an
-- owner-run function. The account's deletion takes its log with it.
CREATE TABLE security_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    at timestamptz NOT NULL,
    action text NOT NULL,
    token_id uuid,
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id uuid,
    client text,
    user_agent text
);
CREATE INDEX security_events_page ON security_events (user_id, at DESC, id DESC);
CREATE INDEX security_events_age ON security_events (at);
COMMENT ON TABLE security_events IS 'What happened to an account''s access (sign-ins, passwords, addresses, sessions, tokens), from which request, address and user agent; append-only.';
COMMENT ON COLUMN security_events.token_id IS 'The session or access token the event made or ended, if one.';
GRANT SELECT, INSERT ON security_events TO linkai_app;

CREATE FUNCTION prune_security_events(before timestamptz) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS
$$
    WITH gone AS (DELETE FROM security_events WHERE at < before RETURNING 1)
    SELECT count(*) FROM gone
$$;
