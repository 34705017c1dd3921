-- Migration 000053's foreign keys set one column to null on delete, which PostgreSQL 15
-- added: stop here, before any table is rekeyed, on an older server.
DO $$
BEGIN
    IF current_setting('server_version_num')::integer < 150000 THEN
        RAISE EXCEPTION 'PostgreSQL 15 or later is needed (docs/deploy.md)';
    END IF;
END;
$$;

-- A send counts toward the invitation limits for a day (src/invitations/mod.rs); older
-- ones count toward nothing. They go before migration 000052 rewrites the table, so that
-- the rewrite, under its lock, copies only a few days of sends. Deleting takes no lock
-- that stops the requests.
DELETE FROM invitation_sends WHERE sent_at < now() - interval '2 days';
