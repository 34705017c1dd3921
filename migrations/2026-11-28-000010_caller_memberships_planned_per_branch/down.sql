CREATE OR REPLACE FUNCTION caller_memberships(among uuid[])
RETURNS TABLE (workspace_id uuid, role text, joined_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public ROWS 10 AS
$$ SELECT m.workspace_id, m.role, m.joined_at FROM memberships m
   WHERE m.user_id = app_user_id() AND (among IS NULL OR m.workspace_id = ANY (among)) $$;
