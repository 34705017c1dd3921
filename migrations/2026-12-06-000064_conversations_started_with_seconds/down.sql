DROP INDEX CONCURRENTLY IF EXISTS conversations_started_seconds;
