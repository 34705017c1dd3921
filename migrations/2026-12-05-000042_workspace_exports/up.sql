-- `exportWorkspace`: the Owner asks, a job builds the workspace's data as one JSON document
-- here, and an emailed link (24 hours) lets that Owner download it with their session.
-- Keyed by workspace first, as a table distributed by `workspace_id` must be (tests/it/citus.rs).
CREATE TABLE workspace_exports (
    id uuid NOT NULL,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    requested_by uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    requested_at timestamptz NOT NULL DEFAULT now(),
    document jsonb,
    ready_at timestamptz,
    expires_at timestamptz,
    -- SHA-256 of the latest emailed link's token; `link_hashes` keeps every one emailed
    -- (migration 000040's trigger), so a retried email leaves the first link working.
    token_hash bytea,
    link_hashes bytea[] NOT NULL DEFAULT '{}',
    sent_at timestamptz,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX workspace_exports_workspace ON workspace_exports (workspace_id, requested_at);
CREATE INDEX workspace_exports_link_hashes ON workspace_exports USING gin (link_hashes);
CREATE INDEX workspace_exports_expiring ON workspace_exports (expires_at) WHERE document IS NOT NULL;
COMMENT ON TABLE workspace_exports IS 'Exports of a workspace''s data asked for by its Owner: the document, and the hashes of the links emailed to download it.';
CREATE TRIGGER keep_link_hashes BEFORE INSERT OR UPDATE OF token_hash ON workspace_exports
    FOR EACH ROW EXECUTE FUNCTION keep_link_hashes();
ALTER TABLE workspace_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON workspace_exports USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON workspace_exports TO linkai_app;

-- The export a link token belongs to, and its workspace (row-level security hides it until
-- a connection is in that workspace).
CREATE FUNCTION workspace_export_by_token(hash bytea) RETURNS TABLE (id uuid, workspace_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$ SELECT id, workspace_id FROM workspace_exports WHERE link_hashes @> ARRAY[hash] $$;
REVOKE ALL ON FUNCTION workspace_export_by_token(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION workspace_export_by_token(bytea) TO linkai_app;

-- The document: the workspace, its members, invitations, resources, billing history, usage,
-- audit log, and conversations with their messages, each column named (a column added
-- later is not exported until it is named here). Runs as the caller, and only for the
-- workspace the connection is in (row-level security applies to the tenant tables; the
-- check covers `workspaces` and `users`, which have none). No hash, password, token, or
-- id of a Stripe object or a service token.
CREATE FUNCTION workspace_export_document(ws uuid) RETURNS jsonb
LANGUAGE sql STABLE AS
$$
SELECT jsonb_build_object(
    'format', 'linkai.workspace-export/1',
    'exportedAt', now(),
    'workspace', (SELECT jsonb_build_object('id', w.id, 'name', w.name, 'createdAt', w.created_at,
                         'trialEndsAt', w.trial_ends_at, 'plan', w.plan,
                         'subscriptionStatus', w.subscription_status, 'timeZone', w.time_zone,
                         'conversationRetentionDays', w.conversation_retention_days)
                  FROM workspaces w WHERE w.id = ws),
    'members', coalesce((SELECT jsonb_agg(jsonb_build_object('userId', u.id, 'name', u.name,
                         'email', u.email, 'role', m.role, 'joinedAt', m.joined_at)
                         ORDER BY m.joined_at, u.id)
                  FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ws), '[]'),
    'invitations', coalesce((SELECT jsonb_agg(jsonb_build_object('id', i.id, 'email', i.email,
                         'role', i.role, 'status', i.status, 'invitedBy', i.invited_by,
                         'createdAt', i.created_at, 'expiresAt', i.expires_at,
                         'respondedAt', i.responded_at) ORDER BY i.created_at, i.id)
                  FROM invitations i WHERE i.workspace_id = ws), '[]'),
    'resources', coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'kind', r.kind,
                         'name', r.name, 'data', r.data, 'createdBy', r.created_by,
                         'createdAt', r.created_at, 'updatedAt', r.updated_at)
                         ORDER BY r.created_at, r.id)
                  FROM resources r WHERE r.workspace_id = ws), '[]'),
    'billing', (SELECT jsonb_build_object('subscriptionStatus', a.subscription_status,
                         'currentPeriodStart', a.current_period_start,
                         'currentPeriodEnd', a.current_period_end,
                         'cancelAtPeriodEnd', a.cancel_at_period_end, 'details', a.details)
                  FROM billing_accounts a WHERE a.workspace_id = ws),
    'invoices', coalesce((SELECT jsonb_agg(jsonb_build_object('number', v.number,
                         'status', v.status, 'amountDueCents', v.amount_due_cents,
                         'currency', v.currency, 'createdAt', v.created_at)
                         ORDER BY v.created_at, v.id)
                  FROM invoices v WHERE v.workspace_id = ws), '[]'),
    'paymentMethods', coalesce((SELECT jsonb_agg(jsonb_build_object('brand', p.brand,
                         'last4', p.last4, 'expMonth', p.exp_month, 'expYear', p.exp_year,
                         'isDefault', p.is_default) ORDER BY p.created_at, p.id)
                  FROM payment_methods p WHERE p.workspace_id = ws), '[]'),
    'usage', coalesce((SELECT jsonb_agg(jsonb_build_object('periodStart', c.period_start,
                         'metric', c.metric, 'total', c.total) ORDER BY c.period_start, c.metric)
                  FROM usage_counters c WHERE c.workspace_id = ws), '[]'),
    'auditLog', coalesce((SELECT jsonb_agg(jsonb_build_object('id', e.id, 'at', e.at,
                         'actorKind', e.actor_kind, 'actorId', e.actor_id, 'action', e.action,
                         'targetKind', e.target_kind, 'targetId', e.target_id,
                         'changes', e.changes, 'requestId', e.request_id, 'client', e.client)
                         ORDER BY e.at, e.id)
                  FROM audit_events e WHERE e.workspace_id = ws), '[]'),
    'conversations', coalesce((SELECT jsonb_agg(jsonb_build_object('id', c.id,
                         'externalId', c.external_id, 'agentId', c.agent_id,
                         'contactId', c.contact_id, 'channel', c.channel, 'status', c.status,
                         'startedAt', c.started_at, 'lastActivityAt', c.last_activity_at,
                         'closedAt', c.closed_at, 'durationSeconds', c.duration_seconds,
                         'messages', coalesce((SELECT jsonb_agg(jsonb_build_object('id', m.id,
                             'externalId', m.external_id, 'direction', m.direction, 'text', m.body,
                             'sentAt', m.sent_at, 'segments', m.segments) ORDER BY m.sent_at, m.id)
                           FROM messages m WHERE m.workspace_id = ws AND m.conversation_id = c.id), '[]'))
                         ORDER BY c.started_at, c.id)
                  FROM conversations c WHERE c.workspace_id = ws), '[]')
)
WHERE ws = app_workspace_id()
$$;
GRANT EXECUTE ON FUNCTION workspace_export_document(uuid) TO linkai_app;

-- Documents past their link's expiry are dropped by the scheduled scan: an export is not a
-- second copy of the data kept beyond its retention.
CREATE FUNCTION forget_expired_exports() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET row_security = off AS
$$
    WITH forgotten AS (
        UPDATE workspace_exports SET document = NULL
        WHERE document IS NOT NULL AND expires_at < now()
        RETURNING 1
    )
    SELECT count(*) FROM forgotten
$$;
REVOKE ALL ON FUNCTION forget_expired_exports() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION forget_expired_exports() TO linkai_app;
