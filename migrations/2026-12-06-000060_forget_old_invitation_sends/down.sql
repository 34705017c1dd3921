DROP FUNCTION forget_old_invitation_sends(timestamptz);
