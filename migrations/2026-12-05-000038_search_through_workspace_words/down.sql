CREATE OR REPLACE FUNCTION conversation_search_hits(ws uuid, words text)
RETURNS TABLE (conversation_id uuid, rank bigint, best uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
DECLARE
    q tsquery := websearch_to_tsquery('english', words);
BEGIN
    RETURN QUERY
    SELECT m.conversation_id,
           (max(r.rank) * 1000000)::bigint,
           (array_agg(m.id ORDER BY r.rank DESC, m.sent_at))[1]
    FROM public.messages m, LATERAL (SELECT ts_rank(m.search, q) AS rank) r
    WHERE ws = public.app_workspace_id() AND m.workspace_id = ws AND m.search @@ q
    GROUP BY m.conversation_id;
END
$$;
