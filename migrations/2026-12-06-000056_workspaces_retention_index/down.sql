DROP INDEX IF EXISTS workspaces_with_retention;
