-- GIN indexes write straight into their trees rather than through a pending list.
-- - Messages' words (000037): with the list, every search reads all of it, whatever it
--   searches for (10,454 entries after bench/run's appends: about 4 of the busy
--   workspace's 32 ms for "refund tomorrow"), and the append that finds it full moves it
--   into the index before it answers (255 ms for that list). Without it, each append
--   inserts its own words: a cost every append pays evenly (about 7 us a message: 5,000 of
--   the busy workspace's inserted in 513 ms with the list, 550 without), rather than one
--   in thousands paying for all.
-- - The emailed links' hashes (000040, 000042): each link opened reads the list the same
--   way; their writes are rare, so the list gave them nothing.
-- Changing the option locks the index, and with it every statement that plans on its
-- table. So each index changes in a transaction of its own that waits at most 500 ms for
-- the lock (below the service's 2 s, so requests queued behind it do not time out), after
-- its list is emptied outside that lock; what came in meanwhile is moved in after. A step
-- that times out fails the migration, and the next start redoes the steps, each of which
-- a second run leaves as it is.
DO $$
DECLARE
    gin text;
BEGIN
    FOREACH gin IN ARRAY ARRAY['invitations_link_hashes', 'sign_up_requests_link_hashes',
                               'account_tokens_link_hashes', 'workspace_exports_link_hashes',
                               'messages_words'] LOOP
        PERFORM gin_clean_pending_list(gin::regclass);
        COMMIT;
        PERFORM set_config('lock_timeout', '500ms', true);
        EXECUTE format('ALTER INDEX %I SET (fastupdate = off)', gin);
        COMMIT;
        PERFORM gin_clean_pending_list(gin::regclass);
        COMMIT;
    END LOOP;
END
$$;
