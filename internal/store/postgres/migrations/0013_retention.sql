-- The janitor's (retention's) indexes on sessions: see the SQLite store's
-- 0013_retention.sql.
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_ip_created ON sessions (created_at) WHERE ip <> '';
