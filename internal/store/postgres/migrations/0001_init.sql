-- The PostgreSQL twin of the SQLite store's 0001_init.sql: the same tables,
-- columns and meaning, with PostgreSQL's types.
--
-- Times are BIGINT unix nanoseconds, as in SQLite, so that a time
-- round-trips exactly (timestamptz keeps only microseconds); NULL means
-- "never" (the zero time.Time).
--
-- Ids are identities, which are never handed out twice (SQLite's
-- AUTOINCREMENT): audit rows keep the id of a deleted user and must not be
-- attributed to a later one. Tables keyed by text (sessions, links,
-- tickets) have a seq identity instead of SQLite's implicit rowid: it is
-- the insertion order that breaks ties in their newest-first listings.

-- meta holds single values the gateway owns, such as its signing secret.
CREATE TABLE meta (
	key   TEXT  PRIMARY KEY,
	value BYTEA NOT NULL
);

CREATE TABLE users (
	id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	site             TEXT    NOT NULL DEFAULT '',
	email            TEXT    NOT NULL,
	name             TEXT    NOT NULL DEFAULT '',
	phone            TEXT    NOT NULL DEFAULT '',
	active           BOOLEAN NOT NULL DEFAULT TRUE,
	created_at       BIGINT  NOT NULL,
	current_login_at BIGINT,
	current_login_ip TEXT    NOT NULL DEFAULT '',
	last_login_at    BIGINT,
	last_login_ip    TEXT    NOT NULL DEFAULT '',
	login_count      BIGINT  NOT NULL DEFAULT 0,
	UNIQUE (site, email)
);

CREATE TABLE user_roles (
	user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role    TEXT   NOT NULL,
	PRIMARY KEY (user_id, role)
);

CREATE TABLE sessions (
	seq           BIGINT GENERATED ALWAYS AS IDENTITY,
	id            TEXT   PRIMARY KEY,
	token_hash    BYTEA  NOT NULL UNIQUE,
	user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at    BIGINT NOT NULL,
	last_seen_at  BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	revoked_at    BIGINT,
	ip            TEXT   NOT NULL DEFAULT '',
	user_agent    TEXT   NOT NULL DEFAULT '',
	kind          TEXT   NOT NULL DEFAULT '',
	credential_id TEXT   NOT NULL DEFAULT ''
);

CREATE INDEX sessions_user_id ON sessions (user_id);
-- Ending every session a credential started, once that credential expires,
-- looks sessions up by credential.
CREATE INDEX sessions_credential ON sessions (kind, credential_id);

-- audit has no foreign key on user_id: the record of an attempt must outlive
-- the user, and writing it must never fail because of one.
CREATE TABLE audit (
	id            BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time          BIGINT   NOT NULL,
	kind          TEXT     NOT NULL DEFAULT '',
	credential_id TEXT     NOT NULL DEFAULT '',
	user_id       BIGINT,
	session_id    TEXT     NOT NULL DEFAULT '',
	outcome       TEXT     NOT NULL DEFAULT '',
	reason        TEXT     NOT NULL DEFAULT '',
	method        TEXT     NOT NULL DEFAULT '',
	host          TEXT     NOT NULL DEFAULT '',
	path          TEXT     NOT NULL DEFAULT '',
	status        INTEGER  NOT NULL DEFAULT 0,
	client_ip     TEXT     NOT NULL DEFAULT '',
	user_agent    TEXT     NOT NULL DEFAULT '',
	ua_browser    TEXT     NOT NULL DEFAULT '',
	ua_version    TEXT     NOT NULL DEFAULT '',
	ua_os         TEXT     NOT NULL DEFAULT '',
	ua_device     TEXT     NOT NULL DEFAULT '',
	ua_bot        BOOLEAN  NOT NULL DEFAULT FALSE,
	latency_us    BIGINT   NOT NULL DEFAULT 0
);

CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_user_time ON audit (user_id, time);
