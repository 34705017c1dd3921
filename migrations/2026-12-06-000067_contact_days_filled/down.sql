-- Nothing to undo: 000066's down drops the table.
SELECT 1;
