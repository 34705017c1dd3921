-- A search read the busy workspace's whole posting list from the (workspace_id, search) GIN
-- index (2 million entries in bench/run) and intersected it with each word's: 30 ms of the
-- 49 ms "refund tomorrow" took. Here every word is indexed under its workspace
-- ('<workspace>_refund'), so a search reads only its own workspace's lists of its own words.
-- Positions and weights are kept, so phrases and ranks mean what they did.

-- The message's words, each prefixed with its workspace's id. Words over 2,000 bytes (the
-- prefix would pass a word's limit, 2,047) are left out of the index: nobody types one.
CREATE FUNCTION workspace_words(ws uuid, words tsvector) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$
    SELECT regexp_replace(
        ts_delete(words, ARRAY(SELECT lexeme FROM unnest(words) WHERE octet_length(lexeme) > 2000))::text,
        '''((?:[^'']|'''')*)''', '''' || replace(ws::text, '-', '') || '_\1''', 'g')::tsvector
$$;
COMMENT ON FUNCTION workspace_words(uuid, tsvector) IS
    'A message''s words, each prefixed with its workspace''s id: what messages_words indexes.';

-- The query, its words prefixed the same way (the text form quotes every word, doubling
-- quotes inside, so the pattern finds each word and nothing else).
CREATE FUNCTION workspace_query(ws uuid, query tsquery) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$
    SELECT regexp_replace(query::text, '''((?:[^'']|'''')*)''',
                          '''' || replace(ws::text, '-', '') || '_\1''', 'g')::tsquery
$$;
COMMENT ON FUNCTION workspace_query(uuid, tsquery) IS
    'A text-search query whose words are prefixed as workspace_words prefixes them.';

CREATE INDEX messages_words ON messages USING gin (workspace_words(workspace_id, search));
DROP INDEX messages_search;

-- Reads through messages_words. A query with no word to look up (only words left out, as in
-- "-refund") cannot use any index and would rank nearly every message: it finds nothing.
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
        RETURN;
    END IF;
    RETURN QUERY
    SELECT DISTINCT ON (m.conversation_id) m.conversation_id, (r.rank * 1000000)::bigint, m.id
    FROM public.messages m, LATERAL (SELECT ts_rank(m.search, q) AS rank) r
    WHERE ws = public.app_workspace_id() AND m.workspace_id = ws
      AND public.workspace_words(m.workspace_id, m.search) @@ public.workspace_query(ws, q)
    ORDER BY m.conversation_id, r.rank DESC, m.sent_at, m.id;
END
$$;
