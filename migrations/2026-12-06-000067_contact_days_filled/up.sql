-- Fills contact_days (000066) from the conversations written before its trigger, 2,000
-- conversations per committed transaction in key order, so that a start whose trigger
-- wants a day the fill has written waits for one short batch, not for the whole fill. The
-- trigger has been adding since 000066 committed, and both only set bits: whichever comes
-- first, the result is the same, and a rerun changes nothing.
DO $$
DECLARE
    last_workspace uuid := '00000000-0000-0000-0000-000000000000';
    last_id uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    PERFORM set_config('row_security', 'off', false);
    LOOP
        WITH batch AS MATERIALIZED (
            SELECT workspace_id, id, contact_id, started_at FROM conversations
            WHERE (workspace_id, id) > (last_workspace, last_id)
            ORDER BY workspace_id, id LIMIT 2000),
        noted AS (
            INSERT INTO contact_days AS d (workspace_id, day, contact_id, hours)
            SELECT workspace_id, (started_at AT TIME ZONE 'UTC')::date, contact_id,
                   bit_or(1 << date_part('hour', started_at AT TIME ZONE 'UTC')::int)
            FROM batch WHERE contact_id IS NOT NULL
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (workspace_id, day, contact_id) DO UPDATE SET hours = d.hours | EXCLUDED.hours
                WHERE d.hours | EXCLUDED.hours <> d.hours
            RETURNING 1)
        SELECT b.workspace_id, b.id INTO last_workspace, last_id
        FROM batch b ORDER BY b.workspace_id DESC, b.id DESC LIMIT 1;
        EXIT WHEN NOT FOUND;
        COMMIT;
    END LOOP;
    PERFORM set_config('row_security', 'on', false);
END
$$;
