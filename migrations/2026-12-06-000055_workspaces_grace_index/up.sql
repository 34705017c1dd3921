-- The grace scan (graces_needing_notice, migration 000028) reads only the workspaces whose
-- payment failed and that were not told yet; tests/it/plans.rs found it reading them all (000057 turns its condition
-- around to use it).
CREATE INDEX CONCURRENTLY IF NOT EXISTS workspaces_grace_due ON workspaces (payment_failed_at)
    WHERE subscription_status = 'past_due' AND grace_notice_at IS NULL AND deleted_at IS NULL;
