DROP TABLE access_tokens;
DROP TRIGGER memberships_exactly_one_owner ON memberships;
DROP FUNCTION memberships_check_exactly_one_owner();
DROP TABLE memberships;
ALTER TABLE users DROP COLUMN active_workspace_id;
DROP TABLE workspaces;
DROP TABLE users;
