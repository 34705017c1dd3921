-- The index 000064 built replaces conversations_started, once it is valid (a build that
-- failed leaves an invalid one behind, which IF NOT EXISTS would have taken for done).
-- Dropping it waits for no more than the lock timeout: the migration fails rather than
-- queueing every request behind it.
SET LOCAL lock_timeout = '3s';
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_index WHERE indexrelid = 'conversations_started_seconds'::regclass
                   AND indisvalid) THEN
        RAISE EXCEPTION 'conversations_started_seconds is not valid: drop it and migrate again';
    END IF;
END
$$;
DROP INDEX IF EXISTS conversations_started;
