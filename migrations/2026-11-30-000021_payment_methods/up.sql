-- Saved cards as mirrored from Stripe by the workers (card webhooks, the billing sync and
-- the periodic reconciliation), so reading a workspace's billing makes no Stripe call.
CREATE TABLE payment_methods (
    id text PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    brand text NOT NULL,
    last4 text NOT NULL,
    exp_month integer NOT NULL,
    exp_year integer NOT NULL,
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_by_workspace ON payment_methods (workspace_id, created_at, id);
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (workspace_id) WHERE is_default;
COMMENT ON TABLE payment_methods IS 'A workspace''s saved cards as last seen in Stripe; is_default marks the one invoices are charged to.';

ALTER TABLE payment_methods ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_methods FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON payment_methods USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON payment_methods TO linkai_app;

-- Card-expiry notices to the Owner and Admins: 30 days before the default card expires and
-- when it has expired, one row per card, expiry date and notice, inserted in the
-- transaction that enqueues its email, so each is sent once however many workers scan. A
-- card Stripe updates (new expiry) is a new expiry date and may be told about again.
CREATE TABLE card_notices (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    payment_method_id text NOT NULL,
    exp_month integer NOT NULL,
    exp_year integer NOT NULL,
    notice text NOT NULL CHECK (notice IN ('expires_soon', 'expired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    emailed_at timestamptz,
    UNIQUE (payment_method_id, exp_month, exp_year, notice)
);
CREATE INDEX card_notices_by_workspace ON card_notices (workspace_id);
COMMENT ON TABLE card_notices IS 'Card-expiry notices recorded per card and expiry date; emailed_at is set once the email went out.';

ALTER TABLE card_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE card_notices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON card_notices USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON card_notices TO linkai_app;

-- Default cards of live workspaces that expire within `notice_days` of `now` (a card is
-- valid through the last day of its month) and still lack their expired notice: for the
-- scheduled scan, which runs outside any workspace.
CREATE FUNCTION cards_needing_notice(now timestamptz, notice_days integer)
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

-- Which workspace a card belongs to: a detached card's events no longer name the customer.
CREATE FUNCTION workspace_of_payment_method(payment_method text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM payment_methods WHERE id = payment_method $$;
