-- One-shot tickets: a guest does one action at a place, for a purpose. Only
-- a hash of the password is kept; password_kind says which hash. data is a
-- JSON object handed upstream, kept as the text it was given in (jsonb
-- would reorder and respace it).
--
-- state is one of 'valid', 'in_use', 'used', 'revoked', 'expired'. A claim
-- moves a ticket to 'in_use' until lease_until; a claim whose lease has
-- lapsed (a crashed request) can be taken over. Finishing a claim moves it
-- to 'used' (recording used_at and the use_ columns) or back to 'valid'.
-- Audit records of a ticket name it as kind 'ticket' and credential_id the
-- uuid. seq is the insertion order (see 0001).
CREATE TABLE tickets (
	seq            BIGINT  GENERATED ALWAYS AS IDENTITY,
	uuid           TEXT    PRIMARY KEY,
	place          TEXT    NOT NULL,
	purpose        TEXT    NOT NULL,
	password_hash  BYTEA   NOT NULL,
	password_kind  TEXT    NOT NULL,
	created_at     BIGINT  NOT NULL,
	expires_at     BIGINT,
	user_id        BIGINT  REFERENCES users (id),
	data           TEXT    NOT NULL DEFAULT '{}',
	state          TEXT    NOT NULL DEFAULT 'valid',
	lease_until    BIGINT,
	used_at        BIGINT,
	use_ip         TEXT    NOT NULL DEFAULT '',
	use_user_agent TEXT    NOT NULL DEFAULT '',
	use_status     INTEGER NOT NULL DEFAULT 0,
	revoked_at     BIGINT
);

-- Listing a place's tickets (for a purpose) newest first.
CREATE INDEX tickets_place_purpose_created ON tickets (place, purpose, created_at);
-- Expiring valid tickets past their expiry, and listing by state.
CREATE INDEX tickets_state_expires ON tickets (state, expires_at);
-- Finding a user's tickets, and checking the foreign key when a user goes.
CREATE INDEX tickets_user_id ON tickets (user_id);
