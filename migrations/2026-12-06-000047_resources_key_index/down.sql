DROP INDEX IF EXISTS resources_workspace_id_id;
