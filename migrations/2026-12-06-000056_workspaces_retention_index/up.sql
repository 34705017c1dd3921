-- The conversation pruner (prune_conversations, migration 000032) visits only the workspaces
-- that set a retention; tests/it/plans.rs found it reading them all.
CREATE INDEX CONCURRENTLY IF NOT EXISTS workspaces_with_retention ON workspaces (id)
    WHERE conversation_retention_days IS NOT NULL;
