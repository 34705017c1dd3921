DROP FUNCTION trials_needing_notice(timestamptz, interval);
DROP INDEX workspaces_trial_ending;
DROP TABLE trial_notices;
