CREATE OR REPLACE FUNCTION graces_needing_notice(now timestamptz, grace interval, notice interval)
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$
    SELECT id FROM workspaces
    WHERE subscription_status = 'past_due' AND deleted_at IS NULL
      AND grace_notice_at IS NULL AND payment_failed_at + grace - notice <= now
$$;
