CREATE OR REPLACE FUNCTION invitation_workspace_by_token(hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM invitations WHERE token_hash = hash $$;
DROP TRIGGER keep_link_hashes ON account_tokens;
ALTER TABLE account_tokens DROP COLUMN link_hashes;
DROP TRIGGER keep_link_hashes ON sign_up_requests;
ALTER TABLE sign_up_requests DROP COLUMN link_hashes;
DROP TRIGGER keep_link_hashes ON invitations;
ALTER TABLE invitations DROP COLUMN link_hashes;
DROP FUNCTION keep_link_hashes();
