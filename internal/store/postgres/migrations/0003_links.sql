-- Signed links. A link minted by the CLI or admin API gets its row when it
-- is created; one minted offline gets it at its first use, from the claims
-- of its verified token, or a revoked placeholder row when it is revoked
-- before it was ever used. Sessions a login link starts name it as kind
-- 'link' and credential_id the jti.

-- links_revoked_before: links of the user issued before this time are
-- refused (NULL: never), which revokes links that have no row yet.
ALTER TABLE users ADD COLUMN links_revoked_before BIGINT;

-- max_uses 0 is unlimited (until expires_at). expires_at is NULL only on a
-- placeholder row written by a revocation. seq is the insertion order (see
-- 0001).
CREATE TABLE links (
	seq           BIGINT GENERATED ALWAYS AS IDENTITY,
	jti           TEXT   PRIMARY KEY,
	user_id       BIGINT REFERENCES users (id),
	target        TEXT   NOT NULL DEFAULT '',
	mode          TEXT   NOT NULL DEFAULT '',
	max_uses      BIGINT NOT NULL DEFAULT 1,
	uses          BIGINT NOT NULL DEFAULT 0,
	created_at    BIGINT NOT NULL,
	created_by    TEXT   NOT NULL DEFAULT '',
	expires_at    BIGINT,
	first_used_at BIGINT,
	last_used_at  BIGINT,
	revoked_at    BIGINT
);

-- Listing a user's links newest first, revoking all of them, and checking
-- the foreign key when a user goes.
CREATE INDEX links_user_created ON links (user_id, created_at);

-- The audit trail of one credential (a link's jti, an invite's id).
CREATE INDEX audit_credential_time ON audit (credential_id, time);
