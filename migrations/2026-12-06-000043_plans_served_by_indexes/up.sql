-- Found by tests/it/plans.rs: the daily round that forgets sign-in networks older than 90
-- days (src/auth/model.rs) read the whole table, which grows with accounts.
CREATE INDEX sign_in_networks_last_signed_in_at ON sign_in_networks (last_signed_in_at);
