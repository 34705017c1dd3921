SET LOCAL lock_timeout = '3s';
DROP TRIGGER conversations_seconds_moved ON conversations;
DROP TRIGGER conversations_seconds_came ON conversations;
DROP FUNCTION conversation_seconds();
ALTER TABLE conversations DROP COLUMN close_seconds, DROP COLUMN first_response_seconds;
