DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE outbox;
DROP TABLE account_tokens;
DROP TABLE invitation_sends;
DROP TABLE invitations;
