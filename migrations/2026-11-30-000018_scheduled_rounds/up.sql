-- Scheduled work (the trial scan, the billing reconciliation) runs once per interval
-- whatever the number of workers: a worker runs a round only if it moves the round's
-- `next_at` forward, which one statement does for exactly one of them (src/schedule.rs).
CREATE TABLE scheduled_rounds (
    name text PRIMARY KEY,
    next_at timestamptz NOT NULL,
    claimed_by text
);
COMMENT ON TABLE scheduled_rounds IS 'One row per kind of scheduled work: when its next round is due, and which worker took the last one.';
GRANT SELECT, INSERT, UPDATE, DELETE ON scheduled_rounds TO linkai_app;
