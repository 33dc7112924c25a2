-- An invite lets one person into one site. Only the keyed hash of its code
-- is kept. user_id is set by the first use, which registers (or links) the
-- user; sessions the invite starts name it as kind 'invite' and
-- credential_id the decimal id, which is how revoking it finds them.
CREATE TABLE invites (
	id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	site          TEXT   NOT NULL,
	email         TEXT   NOT NULL,
	name          TEXT   NOT NULL DEFAULT '',
	phone         TEXT   NOT NULL DEFAULT '',
	code_hash     BYTEA  NOT NULL UNIQUE,
	created_at    BIGINT NOT NULL,
	created_by    TEXT   NOT NULL DEFAULT '',
	user_id       BIGINT REFERENCES users (id),
	first_used_at BIGINT,
	last_used_at  BIGINT,
	use_count     BIGINT NOT NULL DEFAULT 0,
	revoked_at    BIGINT,
	sent_at       BIGINT,
	send_error    TEXT   NOT NULL DEFAULT ''
);

-- Listing a site's invites, newest first.
CREATE INDEX invites_site_created ON invites (site, created_at);
-- Finding a user's invites, and checking the foreign key when a user goes.
CREATE INDEX invites_user_id ON invites (user_id);
