-- Ready to shard (tests/it/citus.rs): usage alerts are keyed by workspace. The table is
-- small (a few alerts per workspace and billing period), so the key is rebuilt in place;
-- the alert job names its workspace and finds the alert by both (src/usage/alerts.rs).
ALTER TABLE usage_alerts DROP CONSTRAINT usage_alerts_pkey;
ALTER TABLE usage_alerts ADD PRIMARY KEY (workspace_id, id);
