DROP INDEX billing_accounts_customer;
ALTER TABLE billing_accounts ADD CONSTRAINT billing_accounts_subscription_id_key UNIQUE (subscription_id);
ALTER TABLE billing_accounts ADD CONSTRAINT billing_accounts_stripe_customer_id_key UNIQUE (stripe_customer_id);

ALTER TABLE billing_operations DROP CONSTRAINT billing_operations_pkey;
ALTER TABLE billing_operations ADD PRIMARY KEY (id);

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
          WHERE n.payment_method_id = p.id AND n.exp_month = p.exp_month
            AND n.exp_year = p.exp_year AND n.notice = 'expired')
$$;
ALTER TABLE card_notices DROP CONSTRAINT card_notices_one_per_expiry;
ALTER TABLE card_notices ADD CONSTRAINT card_notices_payment_method_id_exp_month_exp_year_notice_key
    UNIQUE (payment_method_id, exp_month, exp_year, notice);
ALTER TABLE card_notices DROP CONSTRAINT card_notices_pkey;
ALTER TABLE card_notices ADD PRIMARY KEY (id);

ALTER TABLE payment_methods DROP CONSTRAINT payment_methods_id_key;
ALTER TABLE payment_methods DROP CONSTRAINT payment_methods_pkey;
ALTER TABLE payment_methods ADD PRIMARY KEY (id);
ALTER TABLE invoices DROP CONSTRAINT invoices_id_key;
ALTER TABLE invoices DROP CONSTRAINT invoices_pkey;
ALTER TABLE invoices ADD PRIMARY KEY (id);

-- The sends deleted on the way up counted toward nothing; they stay gone.
ALTER TABLE invitation_sends DROP CONSTRAINT invitation_sends_invitation_fkey;
ALTER TABLE invitation_sends DROP CONSTRAINT invitation_sends_pkey;
ALTER TABLE invitation_sends DROP COLUMN id;

ALTER TABLE invitations ADD CONSTRAINT invitations_token_hash_key UNIQUE (token_hash);
DROP INDEX invitations_id;
ALTER TABLE invitations DROP CONSTRAINT invitations_pkey;
ALTER TABLE invitations ADD PRIMARY KEY (id);
ALTER TABLE invitation_sends ADD CONSTRAINT invitation_sends_invitation_id_fkey
    FOREIGN KEY (invitation_id) REFERENCES invitations (id) ON DELETE CASCADE;
