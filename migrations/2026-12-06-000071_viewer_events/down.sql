DROP TRIGGER viewer_workspace_deleted ON workspaces;
DROP FUNCTION notify_workspace_members();
DROP TRIGGER viewer_tokens_deleted ON access_tokens;
DROP TRIGGER viewer_tokens_revoked ON access_tokens;
DROP TRIGGER viewer_role_changed ON memberships;
DROP TRIGGER viewer_joined_or_left ON memberships;
DROP FUNCTION notify_viewer();
