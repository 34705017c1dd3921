-- The scheduled round forgets sends by their age, in every workspace (migration 000060).
CREATE INDEX CONCURRENTLY IF NOT EXISTS invitation_sends_sent_at ON invitation_sends (sent_at);
