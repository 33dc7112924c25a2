-- The mail outbox: requests enqueue rendered mails, a worker in any gateway
-- sharing the database claims, sends and marks them.
--
-- state is one of 'queued', 'sending', 'sent', 'failed'. A claim moves a
-- mail to 'sending' until lease_until (attempts counts claims); a claim
-- whose lease lapsed (a worker that died mid-send) can be taken over.
-- text_body and html_body hold a live credential (an invite code, a
-- sign-in link) and are blanked once the mail is sent or failed.
-- ref names what the mail is about, e.g. the invite's id in decimal.
CREATE TABLE outbox (
	id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind            TEXT    NOT NULL,
	site            TEXT    NOT NULL DEFAULT '',
	ref             TEXT    NOT NULL DEFAULT '',
	to_addr         TEXT    NOT NULL,
	to_name         TEXT    NOT NULL DEFAULT '',
	subject         TEXT    NOT NULL DEFAULT '',
	text_body       TEXT    NOT NULL DEFAULT '',
	html_body       TEXT    NOT NULL DEFAULT '',
	state           TEXT    NOT NULL DEFAULT 'queued',
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	created_at      BIGINT  NOT NULL,
	next_attempt_at BIGINT  NOT NULL,
	expires_at      BIGINT,
	lease_until     BIGINT,
	sent_at         BIGINT,
	failed_at       BIGINT
);

-- Finding what is due: queued mails by next_attempt_at, sending ones by
-- lease_until. Partial, so that sent and failed mails cost the worker
-- nothing however many are kept.
CREATE INDEX outbox_queued_due ON outbox (next_attempt_at) WHERE state = 'queued';
CREATE INDEX outbox_sending_lease ON outbox (lease_until) WHERE state = 'sending';
-- Listing newest first, with or without a state.
CREATE INDEX outbox_created ON outbox (created_at);
CREATE INDEX outbox_state_created ON outbox (state, created_at);
-- Superseding the queued mails about the same thing.
CREATE INDEX outbox_kind_ref ON outbox (kind, ref) WHERE state = 'queued';
