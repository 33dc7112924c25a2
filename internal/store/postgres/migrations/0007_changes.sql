-- changes is the fan-out of revocations and deactivations (see the SQLite
-- store's 0007_changes.sql). Triggers write it and NOTIFY latchkey_changes,
-- so gateways that LISTEN hear of a revocation at once, and the others on
-- their next poll.
CREATE TABLE changes (
	id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind    TEXT   NOT NULL,
	subject TEXT   NOT NULL,
	at      BIGINT NOT NULL
);

CREATE FUNCTION latchkey_now_ns() RETURNS BIGINT LANGUAGE sql STABLE AS
	$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000000000)::BIGINT $$;

CREATE FUNCTION latchkey_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO changes (kind, subject, at) VALUES ('session', OLD.id, latchkey_now_ns());
	ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
		INSERT INTO changes (kind, subject, at) VALUES ('session', NEW.id, NEW.revoked_at);
	ELSE
		RETURN NULL;
	END IF;
	PERFORM pg_notify('latchkey_changes', '');
	RETURN NULL;
END $$;

CREATE FUNCTION latchkey_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO changes (kind, subject, at) VALUES ('user', OLD.id::text, latchkey_now_ns());
	ELSIF OLD.active IS DISTINCT FROM NEW.active THEN
		INSERT INTO changes (kind, subject, at) VALUES ('user', NEW.id::text, latchkey_now_ns());
	ELSE
		RETURN NULL;
	END IF;
	PERFORM pg_notify('latchkey_changes', '');
	RETURN NULL;
END $$;

CREATE TRIGGER sessions_changed AFTER UPDATE OF revoked_at OR DELETE ON sessions
	FOR EACH ROW EXECUTE FUNCTION latchkey_session_change();
CREATE TRIGGER users_changed AFTER UPDATE OF active OR DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION latchkey_user_change();
