-- Expiring valid tickets is the only query that looked tickets up by state.
-- An index of every ticket by (state, expires_at) moved an entry on every
-- claim and on every stamp, two of the pages each consumption writes; an
-- index of the valid tickets only changes when a ticket stops (or, given
-- back, starts again) being valid.
DROP INDEX tickets_state_expires;
CREATE INDEX tickets_valid_expires ON tickets (expires_at) WHERE state = 'valid';
