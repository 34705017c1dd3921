-- `viewerEvents` (issue 25): what changes about a person's own access. Each server's one
-- listening connection (src/live/mod.rs) hears `viewer_changed` with the person's id, and
-- that person's subscriptions read their workspaces, roles and tokens again. NOTIFY is
-- transactional: only committed changes wake anyone, and PostgreSQL folds a transaction's
-- identical payloads into one.
CREATE FUNCTION notify_viewer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('viewer_changed', OLD.user_id::text);
    ELSE
        PERFORM pg_notify('viewer_changed', NEW.user_id::text);
    END IF;
    RETURN NULL;
END
$$;
-- Joined, left or removed, or a new role (ownership transfers change two rows). A purge
-- deletes a deleted workspace's memberships in batches, a notification each: cheap for a
-- listener (a lookup of subscribers it does not have), so not filtered out.
CREATE TRIGGER viewer_joined_or_left AFTER INSERT OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION notify_viewer();
CREATE TRIGGER viewer_role_changed AFTER UPDATE OF role ON memberships
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION notify_viewer();
-- A session or personal access token revoked or deleted.
CREATE TRIGGER viewer_tokens_revoked AFTER UPDATE OF revoked_at ON access_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION notify_viewer();
CREATE TRIGGER viewer_tokens_deleted AFTER DELETE ON access_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_viewer();

-- A workspace deleted or restored leaves its memberships as they are: every member is
-- told. The owner reads the members, whatever workspace the session is in.
CREATE FUNCTION notify_workspace_members() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS $$
BEGIN
    PERFORM pg_notify('viewer_changed', user_id::text)
    FROM memberships WHERE workspace_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER viewer_workspace_deleted AFTER UPDATE OF deleted_at ON workspaces
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION notify_workspace_members();
