DROP FUNCTION workspace_of_payment_method(text);
DROP FUNCTION cards_needing_notice(timestamptz, integer);
DROP TABLE card_notices;
DROP TABLE payment_methods;
