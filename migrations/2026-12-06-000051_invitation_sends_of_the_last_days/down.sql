-- The sends deleted on the way up counted toward nothing; they stay gone.
SELECT 1;
