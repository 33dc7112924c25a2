-- Failed attempts counted for every gateway on the store, so that N
-- gateways do not give a guesser N times the guesses. One row a key
-- (limiter and client IP, or limiter and credential) and window.
CREATE TABLE throttle (
	key          TEXT    PRIMARY KEY,
	window_start INTEGER NOT NULL,
	failures     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX throttle_window ON throttle (window_start);
