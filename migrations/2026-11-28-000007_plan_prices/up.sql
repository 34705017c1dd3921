-- Plans as synced from Stripe: the price to subscribe to and the limits, read from the
-- products' metadata. Without rows (no Stripe), the built-in defaults apply.

CREATE TABLE plan_prices (
    plan text PRIMARY KEY CHECK (plan IN ('starter', 'growth', 'scale')),
    stripe_price_id text NOT NULL,
    name text NOT NULL,
    monthly_price_cents integer NOT NULL CHECK (monthly_price_cents >= 0),
    messages integer NOT NULL CHECK (messages >= 0),
    sms integer NOT NULL CHECK (sms >= 0),
    agents integer NOT NULL CHECK (agents >= 0),
    phone_numbers integer NOT NULL CHECK (phone_numbers >= 0),
    synced_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE plan_prices IS 'Plans as last synced from Stripe products and prices carrying plan metadata.';
GRANT SELECT, INSERT, UPDATE, DELETE ON plan_prices TO linkai_app;
