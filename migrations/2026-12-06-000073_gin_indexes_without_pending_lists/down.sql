-- Each index in a transaction of its own, as up.sql.
DO $$
DECLARE
    gin text;
BEGIN
    FOREACH gin IN ARRAY ARRAY['messages_words', 'invitations_link_hashes',
                               'sign_up_requests_link_hashes', 'account_tokens_link_hashes',
                               'workspace_exports_link_hashes'] LOOP
        PERFORM set_config('lock_timeout', '500ms', true);
        EXECUTE format('ALTER INDEX %I RESET (fastupdate)', gin);
        COMMIT;
    END LOOP;
END
$$;
