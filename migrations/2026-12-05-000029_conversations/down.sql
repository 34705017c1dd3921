DROP INDEX resources_contact_email;
DROP INDEX resources_contact_phone;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE service_tokens;
DROP EXTENSION IF EXISTS btree_gin;
