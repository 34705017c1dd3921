CREATE OR REPLACE FUNCTION conversation_search_hits(ws uuid, words text)
RETURNS TABLE (conversation_id uuid, rank bigint, best uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    SELECT m.conversation_id,
           (max(ts_rank(m.search, websearch_to_tsquery('english', words))) * 1000000)::bigint,
           (array_agg(m.id ORDER BY ts_rank(m.search, websearch_to_tsquery('english', words)) DESC,
                                    m.sent_at))[1]
    FROM public.messages m
    WHERE ws = public.app_workspace_id() AND m.workspace_id = ws
      AND m.search @@ websearch_to_tsquery('english', words)
    GROUP BY m.conversation_id
$$;
