-- Ready to shard (tests/it/citus.rs): the tables that hold a few rows per workspace (cards,
-- invoices, invitations, notices, plan changes) get keys that lead with workspace_id,
-- built in place; migration 000053 does the large tables. These tables are locked from
-- the first statement to the end, all at once: a lock that cannot be had within the
-- timeout fails the migration, to be run again, rather than queueing every request
-- behind it (docs/deploy.md).
--
-- The binaries of the release before this one run beside this schema during a rollout
-- (docs/deploy.md, "Migrations during a rollout"), and their upserts name the old unique
-- keys of invoices and cards: those stay, beside the new ones, until the next release
-- drops them (tests/it/citus.rs, UNTIL_NEXT_RELEASE).
SET LOCAL lock_timeout = '3s';
LOCK TABLE invitations, invitation_sends, invoices, payment_methods, card_notices,
    billing_operations, billing_accounts IN ACCESS EXCLUSIVE MODE;

ALTER TABLE invitation_sends DROP CONSTRAINT invitation_sends_invitation_id_fkey;
ALTER TABLE invitations DROP CONSTRAINT invitations_pkey;
ALTER TABLE invitations ADD PRIMARY KEY (workspace_id, id);
-- The send job knows only its invitation (invitation_workspace_by_id).
CREATE INDEX invitations_id ON invitations (id);
-- Links are found through link_hashes (migration 000040); a link token is 256 random bits,
-- so nothing needs the old column's uniqueness, which Citus could not keep across shards.
ALTER TABLE invitations DROP CONSTRAINT invitations_token_hash_key;

-- Sends had no key; an identity fills itself, for the previous release's inserts too.
-- Adding it rewrites the table: migration 000051 left it a few days of sends.
ALTER TABLE invitation_sends ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE invitation_sends ADD PRIMARY KEY (workspace_id, id);
ALTER TABLE invitation_sends ADD CONSTRAINT invitation_sends_invitation_fkey
    FOREIGN KEY (workspace_id, invitation_id) REFERENCES invitations (workspace_id, id)
    ON DELETE CASCADE NOT VALID;

ALTER TABLE invoices DROP CONSTRAINT invoices_pkey;
ALTER TABLE invoices ADD PRIMARY KEY (workspace_id, id);
ALTER TABLE invoices ADD CONSTRAINT invoices_id_key UNIQUE (id);
ALTER TABLE payment_methods DROP CONSTRAINT payment_methods_pkey;
ALTER TABLE payment_methods ADD PRIMARY KEY (workspace_id, id);
-- Also how a detached card's webhook, which names only the card, finds its workspace
-- (workspace_of_payment_method): the next release makes it a plain index.
ALTER TABLE payment_methods ADD CONSTRAINT payment_methods_id_key UNIQUE (id);

ALTER TABLE card_notices DROP CONSTRAINT card_notices_pkey;
ALTER TABLE card_notices ADD PRIMARY KEY (workspace_id, id);
ALTER TABLE card_notices DROP CONSTRAINT card_notices_payment_method_id_exp_month_exp_year_notice_key;
ALTER TABLE card_notices ADD CONSTRAINT card_notices_one_per_expiry
    UNIQUE (workspace_id, payment_method_id, exp_month, exp_year, notice);
-- The scan's notice lookup names the workspace, to use the new unique index.
CREATE OR REPLACE FUNCTION cards_needing_notice(now timestamptz, notice_days integer)
RETURNS TABLE (workspace_id uuid, payment_method_id text, exp_month integer, exp_year integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$
    SELECT p.workspace_id, p.id, p.exp_month, p.exp_year
    FROM payment_methods p JOIN workspaces w ON w.id = p.workspace_id AND w.deleted_at IS NULL
    WHERE p.is_default AND p.exp_month BETWEEN 1 AND 12 AND p.exp_year BETWEEN 1 AND 9999
      AND (make_date(p.exp_year, p.exp_month, 1) + interval '1 month' - make_interval(days => notice_days))
          AT TIME ZONE 'UTC' <= now
      AND NOT EXISTS (
          SELECT 1 FROM card_notices n
          WHERE n.workspace_id = p.workspace_id AND n.payment_method_id = p.id AND n.exp_month = p.exp_month
            AND n.exp_year = p.exp_year AND n.notice = 'expired')
$$;

ALTER TABLE billing_operations DROP CONSTRAINT billing_operations_pkey;
ALTER TABLE billing_operations ADD PRIMARY KEY (workspace_id, id);

-- Stripe's ids are Stripe's to keep unique; a webhook finds its workspace by customer.
ALTER TABLE billing_accounts DROP CONSTRAINT billing_accounts_stripe_customer_id_key;
ALTER TABLE billing_accounts DROP CONSTRAINT billing_accounts_subscription_id_key;
CREATE INDEX billing_accounts_customer ON billing_accounts (stripe_customer_id);
