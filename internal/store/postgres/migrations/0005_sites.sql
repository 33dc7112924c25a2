-- Sites are the trust boundary: sessions, links and roles belong to one site
-- (the name a latchkey handler's config gives it, by default the first host
-- of its Caddy site block). Users and invites already had a site column.
--
-- Rows are placed as the SQLite store's 0005_sites.sql places them:
--   sessions: the site of the invite that started them, else their user's
--             site, else ''.
--   links:    their user's site, else the host their target is bound to.
--   roles:    their user's site ('' for users known on every site: such
--             roles grant nothing until granted again on a named site).

ALTER TABLE sessions ADD COLUMN site TEXT NOT NULL DEFAULT '';
UPDATE sessions SET site = coalesce(
	(SELECT i.site FROM invites i WHERE sessions.kind = 'invite' AND i.id::text = sessions.credential_id),
	(SELECT u.site FROM users u WHERE u.id = sessions.user_id),
	'');

ALTER TABLE links ADD COLUMN site TEXT NOT NULL DEFAULT '';
UPDATE links SET site = coalesce(nullif((SELECT u.site FROM users u WHERE u.id = links.user_id), ''),
	lower(split_part(split_part(target, '/', 1), ':', 1)));

ALTER TABLE user_roles ADD COLUMN site TEXT;
UPDATE user_roles r SET site = u.site FROM users u WHERE u.id = r.user_id;
ALTER TABLE user_roles ALTER COLUMN site SET NOT NULL;
ALTER TABLE user_roles DROP CONSTRAINT user_roles_pkey;
ALTER TABLE user_roles ADD PRIMARY KEY (user_id, site, role);
