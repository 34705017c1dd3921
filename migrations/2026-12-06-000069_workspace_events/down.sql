DROP TRIGGER tokens_deleted ON access_tokens;
DROP TRIGGER tokens_revoked ON access_tokens;
DROP FUNCTION notify_token_revoked();
DROP TRIGGER workspace_events ON audit_events;
DROP FUNCTION notify_workspace_event();
DROP TRIGGER number_workspace_event ON audit_events;
DROP FUNCTION number_workspace_event();
ALTER TABLE audit_events DROP COLUMN seq;
DROP TABLE workspace_event_seqs;
