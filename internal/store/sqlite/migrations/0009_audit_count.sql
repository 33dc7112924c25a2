-- count: how many identical refusals one audit row stands for. The audit
-- writer folds a flood of refusals with the same client IP, reason, kind
-- and host within one second into one row, so that an attacker's flood is
-- recorded in full (the counts add up to the refusals) without a row per
-- request. Every other row is one attempt.
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
