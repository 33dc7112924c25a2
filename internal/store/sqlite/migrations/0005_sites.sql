-- Sites are the trust boundary: sessions, links and roles belong to one site
-- (the name a latchkey handler's config gives it, by default the first host
-- of its Caddy site block). Users and invites already had a site column.
--
-- Rows are placed where they can be:
--   sessions: the site of the invite that started them, else their user's
--             site; a session of a user known on every site that no invite
--             started cannot be placed and keeps site '' — no site accepts
--             it, so its holder signs in again.
--   links:    their user's site, else the host their target is bound to
--             (which is the default site name of the block serving it).
--   roles:    their user's site; roles of users known on every site cannot
--             be placed and keep site '' — they grant nothing until an
--             operator grants them again on a named site.

ALTER TABLE sessions ADD COLUMN site TEXT NOT NULL DEFAULT '';
UPDATE sessions SET site = coalesce(
	(SELECT i.site FROM invites i WHERE sessions.kind = 'invite' AND CAST(i.id AS TEXT) = sessions.credential_id),
	(SELECT u.site FROM users u WHERE u.id = sessions.user_id),
	'');

ALTER TABLE links ADD COLUMN site TEXT NOT NULL DEFAULT '';
UPDATE links SET site = coalesce(nullif((SELECT u.site FROM users u WHERE u.id = links.user_id), ''),
	lower(CASE
		WHEN instr(substr(target, 1, instr(target || '/', '/') - 1), ':') > 0
		THEN substr(target, 1, instr(target, ':') - 1)
		ELSE substr(target, 1, instr(target || '/', '/') - 1)
	END));

CREATE TABLE user_roles_new (
	user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	site    TEXT    NOT NULL,
	role    TEXT    NOT NULL,
	PRIMARY KEY (user_id, site, role)
) WITHOUT ROWID;
INSERT INTO user_roles_new (user_id, site, role)
	SELECT r.user_id, u.site, r.role FROM user_roles r JOIN users u ON u.id = r.user_id;
DROP TABLE user_roles;
ALTER TABLE user_roles_new RENAME TO user_roles;
