-- Every link emailed works until it is used or replaced on purpose. A send retried after
-- its email went out (its worker died, or PostgreSQL dropped, before the send was
-- recorded) mints a new link; the one already in the inbox must keep working. So each
-- emailed link's hash is kept in `link_hashes`, and links are looked up there.
--
-- The trigger fills `link_hashes` from `token_hash` (the latest link), which is all the
-- code writes: setting `token_hash` adds a link, and clearing it (an invitation's resend)
-- ends them all. A process of the previous release, running beside this one during a
-- rollout, still writes and reads `token_hash`, so each accepts the other's links.
CREATE FUNCTION keep_link_hashes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.token_hash IS NULL THEN
        NEW.link_hashes := '{}';
    ELSIF NOT NEW.link_hashes @> ARRAY[NEW.token_hash] THEN
        -- The last ten: a send is retried at most eight times.
        NEW.link_hashes := (NEW.link_hashes || NEW.token_hash)[greatest(1, cardinality(NEW.link_hashes) - 8):];
    END IF;
    RETURN NEW;
END;
$$;

ALTER TABLE invitations ADD COLUMN link_hashes bytea[] NOT NULL DEFAULT '{}';
-- Only links that can still be followed; the tables are small (live links), so the
-- indexes are built here, not concurrently.
UPDATE invitations SET link_hashes = ARRAY[token_hash] WHERE token_hash IS NOT NULL AND status = 'pending';
CREATE INDEX invitations_link_hashes ON invitations USING gin (link_hashes);
COMMENT ON COLUMN invitations.link_hashes IS 'SHA-256 of every link token emailed for the current delivery (a retried send adds one); cleared by a resend.';
CREATE TRIGGER keep_link_hashes BEFORE INSERT OR UPDATE OF token_hash ON invitations
    FOR EACH ROW EXECUTE FUNCTION keep_link_hashes();

ALTER TABLE sign_up_requests ADD COLUMN link_hashes bytea[] NOT NULL DEFAULT '{}';
UPDATE sign_up_requests SET link_hashes = ARRAY[token_hash] WHERE token_hash IS NOT NULL;
CREATE INDEX sign_up_requests_link_hashes ON sign_up_requests USING gin (link_hashes);
COMMENT ON COLUMN sign_up_requests.link_hashes IS 'SHA-256 of every link token emailed for the request (a retried send adds one).';
CREATE TRIGGER keep_link_hashes BEFORE INSERT OR UPDATE OF token_hash ON sign_up_requests
    FOR EACH ROW EXECUTE FUNCTION keep_link_hashes();

ALTER TABLE account_tokens ADD COLUMN link_hashes bytea[] NOT NULL DEFAULT '{}';
UPDATE account_tokens SET link_hashes = ARRAY[token_hash]
    WHERE token_hash IS NOT NULL AND used_at IS NULL AND expires_at > now();
CREATE INDEX account_tokens_link_hashes ON account_tokens USING gin (link_hashes);
COMMENT ON COLUMN account_tokens.link_hashes IS 'SHA-256 of every link token emailed for the link (a retried send adds one).';
CREATE TRIGGER keep_link_hashes BEFORE INSERT OR UPDATE OF token_hash ON account_tokens
    FOR EACH ROW EXECUTE FUNCTION keep_link_hashes();

CREATE OR REPLACE FUNCTION invitation_workspace_by_token(hash bytea) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT workspace_id FROM invitations WHERE link_hashes @> ARRAY[hash] $$;
