-- Changing the sign-in address: a one-time link to the new address carries it, and the
-- change happens when that link is followed (src/auth/graphql.rs, `changeEmail`).
ALTER TABLE account_tokens ADD COLUMN new_email text CHECK (new_email = btrim(new_email) AND new_email <> '');
ALTER TABLE account_tokens DROP CONSTRAINT account_tokens_purpose_check;
ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_purpose_check
    CHECK (purpose IN ('verify_email', 'reset_password', 'change_email'));
ALTER TABLE account_tokens ADD CONSTRAINT account_tokens_new_email_for_change_only
    CHECK ((purpose = 'change_email') = (new_email IS NOT NULL));
COMMENT ON COLUMN account_tokens.new_email IS 'change_email links: the address the account moves to when the link is followed.';
