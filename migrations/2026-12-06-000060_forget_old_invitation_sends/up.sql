-- A send counts toward the invitation limits for a day (src/invitations/mod.rs); older
-- ones count toward nothing, and the scheduled round forgets them (src/worker.rs), so the
-- table holds about a day of sends, not every email ever sent.
CREATE FUNCTION forget_old_invitation_sends(before timestamptz) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    -- Never a send that still counts, whatever the caller asks.
    WITH gone AS (
        DELETE FROM invitation_sends
        WHERE sent_at < least(before, now() - interval '1 day') RETURNING 1)
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION forget_old_invitation_sends(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION forget_old_invitation_sends(timestamptz) TO linkai_app;
