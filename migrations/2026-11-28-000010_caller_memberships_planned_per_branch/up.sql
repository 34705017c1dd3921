-- `caller_memberships` was one SQL function whose body PostgreSQL plans afresh on every call,
-- without knowing `among`: the `among IS NULL OR ...` test kept it on the user's index, so a
-- lookup of one workspace read all of an agency user's memberships (2,000 in the benchmark).
-- In PL/pgSQL each branch is its own statement, planned once per session for what it asks:
-- a lookup by primary key, or all of the user's memberships.
CREATE OR REPLACE FUNCTION caller_memberships(among uuid[])
RETURNS TABLE (workspace_id uuid, role text, joined_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public ROWS 10 AS
$$
BEGIN
    IF among IS NULL THEN
        RETURN QUERY SELECT m.workspace_id, m.role, m.joined_at FROM memberships m
            WHERE m.user_id = app_user_id();
    ELSE
        RETURN QUERY SELECT m.workspace_id, m.role, m.joined_at FROM memberships m
            WHERE m.workspace_id = ANY (among) AND m.user_id = app_user_id();
    END IF;
END
$$;
