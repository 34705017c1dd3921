-- Searches read messages_words since migration 000038: the (workspace_id, search) index
-- only slowed writes down.
DROP INDEX CONCURRENTLY IF EXISTS messages_search;
