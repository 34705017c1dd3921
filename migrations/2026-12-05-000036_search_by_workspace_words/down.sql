DROP FUNCTION workspace_query(uuid, tsquery);
DROP FUNCTION workspace_words(uuid, tsvector);
