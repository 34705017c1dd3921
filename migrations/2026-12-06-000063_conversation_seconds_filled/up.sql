-- Fills the seconds (000062) of the conversations written before them, 2,000 rows per
-- committed transaction in key order, so that no transaction holds more than that many
-- conversations' row locks while both releases append (their lock_timeout is 2 s). Rows
-- written since are kept by the trigger; a rerun skips the rows already filled.
DO $$
DECLARE
    last_workspace uuid := '00000000-0000-0000-0000-000000000000';
    last_id uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    PERFORM set_config('row_security', 'off', false);
    LOOP
        WITH batch AS MATERIALIZED (
            SELECT workspace_id, id FROM conversations
            WHERE (workspace_id, id) > (last_workspace, last_id)
            ORDER BY workspace_id, id LIMIT 2000),
        filled AS (
            UPDATE conversations c
            SET first_response_seconds = date_part('epoch', c.first_reply_at - c.first_inbound_at),
                close_seconds = date_part('epoch', c.closed_at - c.started_at)
            FROM batch b
            WHERE c.workspace_id = b.workspace_id AND c.id = b.id
              AND ((c.first_reply_at IS NOT NULL AND c.first_response_seconds IS NULL)
                   OR (c.closed_at IS NOT NULL AND c.close_seconds IS NULL))
            RETURNING 1)
        SELECT b.workspace_id, b.id INTO last_workspace, last_id
        FROM batch b ORDER BY b.workspace_id DESC, b.id DESC LIMIT 1;
        EXIT WHEN NOT FOUND;
        COMMIT;
    END LOOP;
    PERFORM set_config('row_security', 'on', false);
END
$$;
