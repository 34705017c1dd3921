-- A validated constraint cannot be made NOT VALID again, and need not be: nothing to undo.
SELECT 1;
