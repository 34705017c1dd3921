-- Found by tests/it/plans.rs: the daily round that forgets sign-in networks older than 90
-- days (src/auth/model.rs, forget_old_networks) read the whole table, which grows with
-- accounts. Built concurrently, so sign-ins are not blocked while it builds (one
-- statement: diesel runs this file outside a transaction, metadata.toml).
CREATE INDEX CONCURRENTLY IF NOT EXISTS sign_in_networks_last_signed_in_at
    ON sign_in_networks (last_signed_in_at);
