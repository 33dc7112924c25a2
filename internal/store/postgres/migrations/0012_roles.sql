-- roles is the catalog of the roles each site has (see the SQLite store's
-- 0012_roles.sql): what `roles create` makes and `roles list` shows.
CREATE TABLE roles (
	site        TEXT   NOT NULL,
	name        TEXT   NOT NULL,
	description TEXT   NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (site, name)
);

-- The roles already held on a named site exist from now on (the
-- migration's transaction time). Roles of site '' grant nothing and name
-- no site to exist on.
INSERT INTO roles (site, name, created_at)
	SELECT DISTINCT site, role, (extract(epoch FROM now()) * 1000000000)::BIGINT
	FROM user_roles WHERE site <> '';

-- Member counts look user_roles up by role.
CREATE INDEX user_roles_site_role ON user_roles (site, role);

-- Gateways cache a user's row with its roles: every grant and revocation is
-- a change of the user, whichever way it is made. A grant of a role held
-- already (ON CONFLICT DO NOTHING) inserts nothing and records nothing.
CREATE FUNCTION latchkey_user_role_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO changes (kind, subject, at) VALUES ('user', OLD.user_id::text, latchkey_now_ns());
	ELSE
		INSERT INTO changes (kind, subject, at) VALUES ('user', NEW.user_id::text, latchkey_now_ns());
		-- Nothing updates a role in place, but an operator's hand might.
		IF TG_OP = 'UPDATE' AND OLD.user_id IS DISTINCT FROM NEW.user_id THEN
			INSERT INTO changes (kind, subject, at) VALUES ('user', OLD.user_id::text, latchkey_now_ns());
		END IF;
	END IF;
	PERFORM pg_notify('latchkey_changes', '');
	RETURN NULL;
END $$;

CREATE TRIGGER user_roles_changed AFTER INSERT OR UPDATE OR DELETE ON user_roles
	FOR EACH ROW EXECUTE FUNCTION latchkey_user_role_change();
