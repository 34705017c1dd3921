DROP INDEX conversations_started;
DROP TABLE conversation_hours;
ALTER TABLE workspaces DROP COLUMN time_zone;
