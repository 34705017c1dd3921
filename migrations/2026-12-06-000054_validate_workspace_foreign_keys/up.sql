-- Checks the foreign keys migrations 000052 and 000053 added NOT VALID. Each check reads
-- its table under a lock that lets writes go on (SHARE UPDATE EXCLUSIVE), so a large
-- table's check stops nothing.
ALTER TABLE conversations VALIDATE CONSTRAINT conversations_agent_fkey;
ALTER TABLE conversations VALIDATE CONSTRAINT conversations_contact_fkey;
ALTER TABLE messages VALIDATE CONSTRAINT messages_conversation_fkey;
ALTER TABLE invitation_sends VALIDATE CONSTRAINT invitation_sends_invitation_fkey;
