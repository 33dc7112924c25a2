-- roles is the catalog of the roles each site has: what `roles create`
-- makes and `roles list` shows. Granting a role needs its row (the
-- operator's commands check), so that a typo cannot grant a role no route
-- requires. There is no foreign key from user_roles: a role held before the
-- catalog existed, or one of site '' (see 0005_sites.sql), stays held.
CREATE TABLE roles (
	site        TEXT    NOT NULL,
	name        TEXT    NOT NULL,
	description TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (site, name)
) WITHOUT ROWID;

-- The roles already held on a named site exist from now on. Roles of site
-- '' grant nothing and name no site to exist on.
INSERT INTO roles (site, name, created_at)
	SELECT DISTINCT site, role, CAST(unixepoch('subsec') * 1000000000 AS INTEGER)
	FROM user_roles WHERE site <> '';

-- Member counts look user_roles up by role.
CREATE INDEX user_roles_site_role ON user_roles (site, role);

-- Gateways cache a user's row with its roles: every grant and revocation is
-- a change of the user (see 0007_changes.sql), whichever way it is made.
-- A grant of a role held already inserts nothing and records nothing.
CREATE TRIGGER user_roles_granted AFTER INSERT ON user_roles
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('user', CAST(NEW.user_id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;

CREATE TRIGGER user_roles_revoked AFTER DELETE ON user_roles
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('user', CAST(OLD.user_id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
END;

-- Nothing updates a role in place, but an operator's hand might: it
-- changes the roles of the user it leaves and of the one it moves to.
CREATE TRIGGER user_roles_updated AFTER UPDATE ON user_roles
BEGIN
	INSERT INTO changes (kind, subject, at) VALUES ('user', CAST(NEW.user_id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER));
	INSERT INTO changes (kind, subject, at) SELECT 'user', CAST(OLD.user_id AS TEXT), CAST(unixepoch('subsec') * 1000000000 AS INTEGER)
		WHERE OLD.user_id IS NOT NEW.user_id;
END;
