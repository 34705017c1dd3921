DROP FUNCTION prune_conversations(timestamptz, integer);
ALTER TABLE workspaces DROP COLUMN conversation_retention_days;
