-- The janitor (retention) looks sessions up by when they ended and, for
-- blanking the addresses of old ones, by when they started. Without these
-- it would read the whole table on every run, holding the writer. A
-- session is written to them once, when it starts (and, revoked, once
-- more): touches move last_seen_at, which no index holds.
CREATE INDEX sessions_expires ON sessions (expires_at);
-- Partial: only revoked sessions, which are few.
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
-- Partial: a session leaves it when its address is blanked, so the index
-- holds the sessions of the last retain_ip, not every session kept.
CREATE INDEX sessions_ip_created ON sessions (created_at) WHERE ip <> '';
