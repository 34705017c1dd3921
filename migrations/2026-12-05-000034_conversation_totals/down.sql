DROP TRIGGER conversations_moved ON conversations;
DROP TRIGGER conversations_gone ON conversations;
DROP TRIGGER conversations_came ON conversations;
DROP FUNCTION count_conversations();
DROP FUNCTION add_conversation_total(uuid, text, text, bigint);
DROP TABLE conversation_totals;
DROP TABLE workspace_conversation_hours;
