DROP INDEX IF EXISTS conversations_workspace_id_id;
