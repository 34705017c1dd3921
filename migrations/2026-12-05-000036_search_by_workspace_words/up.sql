-- A search read the busy workspace's whole posting list from the (workspace_id, search) GIN
-- index (2 million entries in bench/run) and intersected it with each word's: 30 ms of the
-- 49 ms "refund tomorrow" took. Here every word is indexed under its workspace
-- ('<workspace>_refund'), so a search reads only its own workspace's lists of its own words.
-- Positions and weights are kept, so phrases and ranks mean what they did.
--
-- Four migrations, so that the index is built and the old one dropped concurrently (each
-- alone in a migration outside a transaction, as PostgreSQL requires) while appends and the
-- old binaries' searches go on: the functions (this one), the index (000037), searching
-- through it (000038), dropping the old index (000039).

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
