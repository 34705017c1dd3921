-- Nothing to undo: 000062's down drops the columns.
SELECT 1;
