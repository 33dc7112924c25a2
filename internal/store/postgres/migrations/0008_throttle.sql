-- Failed attempts counted for every gateway on the store (see the SQLite
-- store's 0008_throttle.sql).
CREATE TABLE throttle (
	key          TEXT   PRIMARY KEY,
	window_start BIGINT NOT NULL,
	failures     INTEGER NOT NULL
);

CREATE INDEX throttle_window ON throttle (window_start);
