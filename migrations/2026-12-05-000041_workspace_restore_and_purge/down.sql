DROP FUNCTION purge_workspace_finish(uuid, bigint);
DROP FUNCTION purge_workspace_batch(uuid, integer);
DROP FUNCTION workspaces_to_purge(timestamptz, integer);
DROP TABLE purged_workspaces;
DROP INDEX workspaces_deleted;
ALTER TABLE billing_accounts DROP COLUMN ended_by_deletion;
