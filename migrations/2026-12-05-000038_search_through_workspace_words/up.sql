-- Reads through messages_words. A query no index can answer (only words left out, as in
-- "-refund", or "parking or -booking", which matches nearly every message) would rank nearly
-- every message: it is refused as a check violation of `conversation_search_words`, which
-- the service answers with BAD_USER_INPUT (src/conversations/model.rs).
-- Each conversation's best message comes from one sort (DISTINCT ON), not a sort per
-- conversation (array_agg ORDER BY): 45 to 31 ms for "refund tomorrow". Planned for each
-- call: after five calls a session's generic plan, blind to the workspace and the words, took
-- 177 to 391 ms.
CREATE OR REPLACE FUNCTION conversation_search_hits(ws uuid, words text)
RETURNS TABLE (conversation_id uuid, rank bigint, best uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp SET row_security = off SET plan_cache_mode = force_custom_plan AS
$$
DECLARE
    q tsquery := websearch_to_tsquery('english', words);
BEGIN
    IF querytree(q) = 'T' THEN
        RAISE EXCEPTION 'a search needs a word to find'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'conversation_search_words';
    END IF;
    RETURN QUERY
    SELECT DISTINCT ON (m.conversation_id) m.conversation_id, (r.rank * 1000000)::bigint, m.id
    FROM public.messages m, LATERAL (SELECT ts_rank(m.search, q) AS rank) r
    WHERE ws = public.app_workspace_id() AND m.workspace_id = ws
      AND public.workspace_words(m.workspace_id, m.search) @@ public.workspace_query(ws, q)
    ORDER BY m.conversation_id, r.rank DESC, m.sent_at, m.id;
END
$$;
