DROP FUNCTION workspaces_with_billing();
DROP FUNCTION workspace_of_stripe_customer(text);
DROP TABLE stripe_events;
