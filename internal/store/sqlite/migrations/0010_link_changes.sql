-- Gateways cache the user and link rows a signed link is decided on, as
-- they cache sessions; the fan-out must therefore also name a user whose
-- links were revoked, and a link revoked or deleted.
CREATE TRIGGER users_links_revoked AFTER UPDATE OF links_revoked_before ON users
	WHEN OLD.links_revoked_before IS NOT NEW.links_revoked_before
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('user', CAST(NEW.id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;

CREATE TRIGGER links_revoked AFTER UPDATE OF revoked_at ON links
	WHEN OLD.revoked_at IS NOT NEW.revoked_at
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('link', NEW.jti, CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;

CREATE TRIGGER links_deleted AFTER DELETE ON links
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('link', OLD.jti, CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;
