-- Gateways cache the user and link rows a signed link is decided on, as
-- they cache sessions; the fan-out must therefore also name a user whose
-- links were revoked, and a link revoked or deleted (see the SQLite store's
-- 0010_link_changes.sql).
CREATE OR REPLACE FUNCTION latchkey_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO changes (kind, subject, at) VALUES ('user', OLD.id::text, latchkey_now_ns());
	ELSIF OLD.active IS DISTINCT FROM NEW.active
		OR OLD.links_revoked_before IS DISTINCT FROM NEW.links_revoked_before THEN
		INSERT INTO changes (kind, subject, at) VALUES ('user', NEW.id::text, latchkey_now_ns());
	ELSE
		RETURN NULL;
	END IF;
	PERFORM pg_notify('latchkey_changes', '');
	RETURN NULL;
END $$;

DROP TRIGGER users_changed ON users;
CREATE TRIGGER users_changed AFTER UPDATE OF active, links_revoked_before OR DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION latchkey_user_change();

CREATE FUNCTION latchkey_link_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO changes (kind, subject, at) VALUES ('link', OLD.jti, latchkey_now_ns());
	ELSIF OLD.revoked_at IS DISTINCT FROM NEW.revoked_at THEN
		INSERT INTO changes (kind, subject, at) VALUES ('link', NEW.jti, latchkey_now_ns());
	ELSE
		RETURN NULL;
	END IF;
	PERFORM pg_notify('latchkey_changes', '');
	RETURN NULL;
END $$;

CREATE TRIGGER links_changed AFTER UPDATE OF revoked_at OR DELETE ON links
	FOR EACH ROW EXECUTE FUNCTION latchkey_link_change();
