DROP INDEX IF EXISTS invitation_sends_sent_at;
