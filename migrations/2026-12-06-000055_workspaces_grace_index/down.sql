DROP INDEX IF EXISTS workspaces_grace_due;
