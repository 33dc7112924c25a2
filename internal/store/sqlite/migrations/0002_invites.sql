-- An invite lets one person into one site. Only the keyed hash of its code
-- is kept. user_id is set by the first use, which registers (or links) the
-- user; sessions the invite starts name it as kind 'invite' and
-- credential_id the decimal id, which is how revoking it finds them.
CREATE TABLE invites (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	site          TEXT    NOT NULL,
	email         TEXT    NOT NULL,
	name          TEXT    NOT NULL DEFAULT '',
	phone         TEXT    NOT NULL DEFAULT '',
	code_hash     BLOB    NOT NULL UNIQUE,
	created_at    INTEGER NOT NULL,
	created_by    TEXT    NOT NULL DEFAULT '',
	user_id       INTEGER REFERENCES users (id),
	first_used_at INTEGER,
	last_used_at  INTEGER,
	use_count     INTEGER NOT NULL DEFAULT 0,
	revoked_at    INTEGER,
	sent_at       INTEGER,
	send_error    TEXT    NOT NULL DEFAULT ''
);

-- Listing a site's invites, newest first.
CREATE INDEX invites_site_created ON invites (site, created_at);
-- Finding a user's invites, and checking the foreign key when a user goes.
CREATE INDEX invites_user_id ON invites (user_id);
