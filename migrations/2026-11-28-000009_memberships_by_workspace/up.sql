-- Memberships are a workspace's rows like any other tenant table. The caller's own
-- memberships across workspaces (to list their workspaces) come from one owner-run function
-- instead of an `OR` in the policy: the `OR` made PostgreSQL read and sort a workspace's whole
-- member list for every page, where the page index can stop after one page.
CREATE FUNCTION caller_memberships()
RETURNS TABLE (workspace_id uuid, role text, joined_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 10 AS
$$ SELECT m.workspace_id, m.role, m.joined_at FROM memberships m WHERE m.user_id = app_user_id() $$;
COMMENT ON FUNCTION caller_memberships() IS 'The memberships of the session''s user (app.user_id), whatever the session''s workspace.';

DROP POLICY tenant ON memberships;
CREATE POLICY tenant ON memberships USING (workspace_id = app_workspace_id());
