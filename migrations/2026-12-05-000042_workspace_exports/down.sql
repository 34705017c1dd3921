DROP FUNCTION forget_expired_exports();
DROP FUNCTION workspace_export_document(uuid);
DROP FUNCTION workspace_export_by_token(bytea);
DROP TABLE workspace_exports;
