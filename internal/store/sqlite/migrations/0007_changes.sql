-- changes is the fan-out of revocations and deactivations: every gateway on
-- the store follows it to drop what it caches, so that a session revoked or
-- a user deactivated through one gateway (or the CLI) is refused by all of
-- them within a second. Triggers write it, so no way of revoking, present or
-- future, can forget to. Rows are pruned by the janitor after an hour.
CREATE TABLE changes (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	kind    TEXT    NOT NULL, -- 'session' (subject: its id) or 'user' (subject: the user id)
	subject TEXT    NOT NULL,
	at      INTEGER NOT NULL
);

CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
	WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('session', NEW.id, NEW.revoked_at);
END;

CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('session', OLD.id, CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;

CREATE TRIGGER users_active AFTER UPDATE OF active ON users
	WHEN OLD.active IS NOT NEW.active
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('user', CAST(NEW.id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('user', CAST(OLD.id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;
