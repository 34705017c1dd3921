SET LOCAL lock_timeout = '3s';
DROP FUNCTION prune_contact_days(timestamptz, integer);
DROP TRIGGER conversations_contact_days ON conversations;
DROP FUNCTION note_contact_days();
DROP TABLE contact_days;
