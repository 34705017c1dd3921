DROP POLICY tenant ON memberships;
CREATE POLICY tenant ON memberships
    USING (workspace_id = app_workspace_id() OR user_id = app_user_id())
    WITH CHECK (workspace_id = app_workspace_id());
DROP FUNCTION caller_memberships(uuid[]);
