-- Memberships are a workspace's rows like any other tenant table. The caller's own
-- memberships across workspaces (to list their workspaces) come from one owner-run function
-- instead of an `OR` in the policy: the `OR` made PostgreSQL read and sort a workspace's whole
-- member list for every page, where the page index can stop after one page.
-- `among` (null: all) keeps a lookup of a few workspaces on the primary key however many
-- workspaces the caller belongs to (an agency's user may belong to thousands).
CREATE FUNCTION caller_memberships(among uuid[])
RETURNS TABLE (workspace_id uuid, role text, joined_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 10 AS
$$ SELECT m.workspace_id, m.role, m.joined_at FROM memberships m
   WHERE m.user_id = app_user_id() AND (among IS NULL OR m.workspace_id = ANY (among)) $$;
COMMENT ON FUNCTION caller_memberships(uuid[]) IS 'The memberships of the session''s user (app.user_id) among the given workspaces (null: all), whatever the session''s workspace.';

DROP POLICY tenant ON memberships;
CREATE POLICY tenant ON memberships USING (workspace_id = app_workspace_id());
