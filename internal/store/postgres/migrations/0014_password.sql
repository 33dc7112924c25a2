-- A user's password hash: argon2id, or a legacy application's hash brought
-- by `users import` until the next login replaces it; '' when the user has
-- none. Gateways cache user rows, so a changed hash is a change of the user
-- (see the SQLite store's 0014_password.sql).
ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';

CREATE OR REPLACE FUNCTION latchkey_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO changes (kind, subject, at) VALUES ('user', OLD.id::text, latchkey_now_ns());
	ELSIF OLD.active IS DISTINCT FROM NEW.active
		OR OLD.links_revoked_before IS DISTINCT FROM NEW.links_revoked_before
		OR OLD.password_hash IS DISTINCT FROM NEW.password_hash THEN
		INSERT INTO changes (kind, subject, at) VALUES ('user', NEW.id::text, latchkey_now_ns());
	ELSE
		RETURN NULL;
	END IF;
	PERFORM pg_notify('latchkey_changes', '');
	RETURN NULL;
END $$;

DROP TRIGGER users_changed ON users;
CREATE TRIGGER users_changed AFTER UPDATE OF active, links_revoked_before, password_hash OR DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION latchkey_user_change();
