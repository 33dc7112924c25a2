-- See the SQLite store's 0011_ticket_valid_index.sql.
DROP INDEX tickets_state_expires;
CREATE INDEX tickets_valid_expires ON tickets (expires_at) WHERE state = 'valid';
