-- The 100× data set (issue 24), loaded by `BENCH_ONLY=scale bench/run` on top of
-- bench/seed.sql once the 1× figures are taken: workspaces 2,001 to 200,000, shaped as
-- the first 2,000 are. Totals: 200,000 workspaces, 1.2 million memberships, 12.6 million
-- resources, 300,000 more users with a session each.
--
-- Workspace n (n > 2,000) is owned by user 1,000,000 + n, has the bench operator (user 0)
-- as Admin and four Members drawn from a pool of 100,000 users (2,000,000 to 2,099,999),
-- and holds 20 agents, 40 contacts and 3 knowledge bases. Ids follow bench/seed.sql's
-- scheme, so the driver can address them.

BEGIN;

CREATE FUNCTION pg_temp.user_id(n integer) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION pg_temp.workspace_id(n integer) RETURNS uuid IMMUTABLE LANGUAGE sql AS
$$ SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid $$;

INSERT INTO users (id, email, name, password_hash, email_verified_at)
SELECT pg_temp.user_id(n), 'user' || n || '@bench.example.com', 'Bench User ' || n,
       'not-a-password-hash', now()
FROM (SELECT 1000000 + generate_series(2001, 200000) AS n
      UNION ALL SELECT generate_series(2000000, 2099999)) AS u;

-- A session per new user, as bench/seed.sql gives its users (the token table grows too).
INSERT INTO access_tokens (id, user_id, kind, name, token_hash)
SELECT gen_random_uuid(), pg_temp.user_id(n), 'session', 'bench',
       sha256(convert_to('lks_bench_' || n, 'UTF8'))
FROM (SELECT 1000000 + generate_series(2001, 200000) AS n
      UNION ALL SELECT generate_series(2000000, 2099999)) AS u;

INSERT INTO workspaces (id, name, created_at, trial_ends_at)
SELECT pg_temp.workspace_id(n), 'Workspace ' || n, now() - interval '1 day',
       now() + interval '13 days'
FROM generate_series(2001, 200000) AS n;

INSERT INTO memberships (workspace_id, user_id, role, joined_at)
SELECT pg_temp.workspace_id(n), pg_temp.user_id(1000000 + n), 'owner', now() - interval '1 day'
FROM generate_series(2001, 200000) AS n
UNION ALL
SELECT pg_temp.workspace_id(n), pg_temp.user_id(0), 'admin', now() - interval '1 day'
FROM generate_series(2001, 200000) AS n
UNION ALL
SELECT pg_temp.workspace_id(n), pg_temp.user_id(2000000 + (n * 7 + j * 25013) % 100000),
       'member', now() - interval '1 hour' * j
FROM generate_series(2001, 200000) AS n, generate_series(0, 3) AS j;

INSERT INTO resources (id, workspace_id, kind, name, data, created_by, created_at)
SELECT gen_random_uuid(), pg_temp.workspace_id(n), 'agent', 'Agent ' || i,
       jsonb_build_object('description', 'Answers calls for team ' || i),
       pg_temp.user_id(1000000 + n), now() - interval '1 minute' * i
FROM generate_series(2001, 200000) AS n, generate_series(1, 20) AS i
UNION ALL
SELECT gen_random_uuid(), pg_temp.workspace_id(n), 'contact', 'Contact ' || i,
       jsonb_build_object('email', 'contact' || i || '@customer.example.com'),
       pg_temp.user_id(1000000 + n), now() - interval '1 minute' * i
FROM generate_series(2001, 200000) AS n, generate_series(1, 40) AS i
UNION ALL
SELECT gen_random_uuid(), pg_temp.workspace_id(n), 'knowledge_base', 'Handbook ' || i,
       jsonb_build_object('description', 'Policies, part ' || i),
       pg_temp.user_id(1000000 + n), now() - interval '1 minute' * i
FROM generate_series(2001, 200000) AS n, generate_series(1, 3) AS i;

COMMIT;

VACUUM ANALYZE;
