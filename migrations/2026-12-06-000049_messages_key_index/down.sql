DROP INDEX IF EXISTS messages_workspace_id_id;
