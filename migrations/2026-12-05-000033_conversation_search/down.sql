DROP FUNCTION conversation_search_hits(uuid, text);
