-- Invoices as mirrored from Stripe by the billing sync.

CREATE TABLE invoices (
    id text PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    number text,
    status text NOT NULL,
    amount_due_cents bigint NOT NULL,
    currency text NOT NULL,
    created_at timestamptz NOT NULL,
    hosted_invoice_url text,
    synced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_page ON invoices (workspace_id, created_at DESC, id DESC);
COMMENT ON TABLE invoices IS 'A workspace''s Stripe invoices as last synced.';

ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON invoices USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO linkai_app;
