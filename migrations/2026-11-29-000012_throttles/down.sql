CREATE FUNCTION invitation_sends_to_address(address text, since timestamptz) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT count(*) FROM invitation_sends WHERE email_lower = address AND sent_at > since $$;
DROP TABLE throttles;
