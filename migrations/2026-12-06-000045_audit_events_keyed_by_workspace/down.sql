ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD PRIMARY KEY (id);
-- What migration 000044's down drops.
CREATE UNIQUE INDEX audit_events_workspace_id_id ON audit_events (workspace_id, id);
