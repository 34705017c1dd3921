-- The benchmark's data set, loaded as the superuser into a freshly migrated database.
--
-- 3,001 users, 2,000 workspaces (each with its Owner, the bench operator as Admin and four
-- Members; workspace 1 has 300 more), 126,000 resources with their creation in the audit
-- log, a session per user. Ids are deterministic so the driver can address them: user n
-- is 00000000-0000-4000-8000-<n>,
-- workspace n is 00000000-0000-4000-9000-<n>, and user n's session token is `lks_bench_<n>`
-- (user 0 is the operator, Admin everywhere).

BEGIN;

CREATE FUNCTION pg_temp.user_id(n integer) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION pg_temp.workspace_id(n integer) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid $$;

INSERT INTO users (id, email, name, password_hash, email_verified_at)
SELECT pg_temp.user_id(n), 'user' || n || '@bench.example.com', 'Bench User ' || n,
       'not-a-password-hash', now()
FROM generate_series(0, 3000) AS n;

INSERT INTO access_tokens (id, user_id, kind, name, token_hash)
SELECT gen_random_uuid(), pg_temp.user_id(n), 'session', 'bench',
       sha256(convert_to('lks_bench_' || n, 'UTF8'))
FROM generate_series(0, 3000) AS n;

INSERT INTO workspaces (id, name, created_at, trial_ends_at)
SELECT pg_temp.workspace_id(n), 'Workspace ' || n, now() - interval '1 day',
       now() + interval '13 days'
FROM generate_series(1, 2000) AS n;

INSERT INTO memberships (workspace_id, user_id, role, joined_at)
SELECT pg_temp.workspace_id(n), pg_temp.user_id(n), 'owner', now() - interval '1 day'
FROM generate_series(1, 2000) AS n
UNION ALL
SELECT pg_temp.workspace_id(n), pg_temp.user_id(0), 'admin', now() - interval '1 day'
FROM generate_series(1, 2000) AS n
UNION ALL
SELECT pg_temp.workspace_id(n), pg_temp.user_id(2001 + (n * 7 + j) % 1000), 'member',
       now() - interval '1 hour' * j
FROM generate_series(2, 2000) AS n, generate_series(0, 3) AS j
UNION ALL
SELECT pg_temp.workspace_id(1), pg_temp.user_id(n), 'member',
       now() - interval '1 minute' * n
FROM generate_series(2001, 2300) AS n;

INSERT INTO resources (id, workspace_id, kind, name, data, created_by, created_at)
SELECT gen_random_uuid(), pg_temp.workspace_id(n), 'agent', 'Agent ' || i,
       jsonb_build_object('description', 'Answers calls for team ' || i), pg_temp.user_id(n),
       now() - interval '1 minute' * i
FROM generate_series(1, 2000) AS n, generate_series(1, 50) AS i
WHERE i <= 20 OR n = 1
UNION ALL
SELECT gen_random_uuid(), pg_temp.workspace_id(n), 'contact', 'Contact ' || i,
       jsonb_build_object('email', 'contact' || i || '@customer.example.com'),
       pg_temp.user_id(n), now() - interval '1 minute' * i
FROM generate_series(1, 2000) AS n, generate_series(1, 40) AS i
UNION ALL
SELECT gen_random_uuid(), pg_temp.workspace_id(n), 'knowledge_base', 'Handbook ' || i,
       jsonb_build_object('description', 'Policies, part ' || i), pg_temp.user_id(n),
       now() - interval '1 minute' * i
FROM generate_series(1, 2000) AS n, generate_series(1, 3) AS i;

-- Each resource's creation in its workspace's audit log, as the API writes it (numbered
-- in its workspace's stream by migration 000069's trigger). A workspace with these
-- resources has that history, and the log's statistics are what its queries are planned
-- with: an empty log would plan the stream's reads as scans of the whole table.
INSERT INTO audit_events (workspace_id, at, actor_kind, actor_id, action, target_kind,
                          target_id, changes)
SELECT workspace_id, created_at, 'user', created_by, 'resource.created', kind, id::text,
       jsonb_build_object('name', name)
FROM resources
ORDER BY created_at;

COMMIT;

VACUUM ANALYZE;
