-- count: how many identical refusals one audit row stands for (see the
-- SQLite store's 0009_audit_count.sql). A constant default: no table
-- rewrite.
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
