-- A user's password hash: argon2id, or a legacy application's hash brought
-- by `users import` until the next login replaces it; '' when the user has
-- none. Gateways cache user rows, so a changed hash is a change of the user.
ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';

CREATE TRIGGER users_password AFTER UPDATE OF password_hash ON users
	WHEN OLD.password_hash IS NOT NEW.password_hash
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('user', CAST(NEW.id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;
