-- The index migration 000044 built becomes the primary key (a brief lock, no index build).
-- Nothing reads an audit event by its id alone: pages go by workspace, time and id.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey
    PRIMARY KEY USING INDEX audit_events_workspace_id_id;
