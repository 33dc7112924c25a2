-- Times are INTEGER unix nanoseconds; NULL means "never" (the zero time.Time).

-- meta holds single values the gateway owns, such as its signing secret.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);

-- AUTOINCREMENT so that an id is never handed out twice: audit rows keep the
-- id of a deleted user and must not be attributed to a later one.
CREATE TABLE users (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	site             TEXT    NOT NULL DEFAULT '',
	email            TEXT    NOT NULL,
	name             TEXT    NOT NULL DEFAULT '',
	phone            TEXT    NOT NULL DEFAULT '',
	active           INTEGER NOT NULL DEFAULT 1,
	created_at       INTEGER NOT NULL,
	current_login_at INTEGER,
	current_login_ip TEXT    NOT NULL DEFAULT '',
	last_login_at    INTEGER,
	last_login_ip    TEXT    NOT NULL DEFAULT '',
	login_count      INTEGER NOT NULL DEFAULT 0,
	UNIQUE (site, email)
);

CREATE TABLE user_roles (
	user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role    TEXT    NOT NULL,
	PRIMARY KEY (user_id, role)
) WITHOUT ROWID;

CREATE TABLE sessions (
	id            TEXT    PRIMARY KEY,
	token_hash    BLOB    NOT NULL UNIQUE,
	user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at    INTEGER NOT NULL,
	last_seen_at  INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL,
	revoked_at    INTEGER,
	ip            TEXT    NOT NULL DEFAULT '',
	user_agent    TEXT    NOT NULL DEFAULT '',
	kind          TEXT    NOT NULL DEFAULT '',
	credential_id TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX sessions_user_id ON sessions (user_id);
-- Ending every session a credential started, once that credential expires,
-- looks sessions up by credential.
CREATE INDEX sessions_credential ON sessions (kind, credential_id);

-- audit has no foreign key on user_id: the record of an attempt must outlive
-- the user, and writing it must never fail because of one.
CREATE TABLE audit (
	id            INTEGER PRIMARY KEY,
	time          INTEGER NOT NULL,
	kind          TEXT    NOT NULL DEFAULT '',
	credential_id TEXT    NOT NULL DEFAULT '',
	user_id       INTEGER,
	session_id    TEXT    NOT NULL DEFAULT '',
	outcome       TEXT    NOT NULL DEFAULT '',
	reason        TEXT    NOT NULL DEFAULT '',
	method        TEXT    NOT NULL DEFAULT '',
	host          TEXT    NOT NULL DEFAULT '',
	path          TEXT    NOT NULL DEFAULT '',
	status        INTEGER NOT NULL DEFAULT 0,
	client_ip     TEXT    NOT NULL DEFAULT '',
	user_agent    TEXT    NOT NULL DEFAULT '',
	ua_browser    TEXT    NOT NULL DEFAULT '',
	ua_version    TEXT    NOT NULL DEFAULT '',
	ua_os         TEXT    NOT NULL DEFAULT '',
	ua_device     TEXT    NOT NULL DEFAULT '',
	ua_bot        INTEGER NOT NULL DEFAULT 0,
	latency_us    INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_user_time ON audit (user_id, time);
