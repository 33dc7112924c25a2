package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Retention's statements take a cut ($1, unix nanoseconds) and a batch size
// ($2), as on SQLite (see its retention.go). Each picks at most a batch of
// rows by an index (migration 13 for sessions; audit_time) and deletes or
// changes them. The outer WHERE repeats the condition where a concurrent
// write can change it (a login moves the current login to the last), so
// that a row is changed and counted only while it still qualifies.
const (
	// Deleting a session fires latchkey_session_change, which records a
	// change per session (gateways drop it from their caches) and one
	// NOTIFY per transaction.
	retainSessionsSQL = `DELETE FROM sessions WHERE id IN
		(SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2)`
	retainSessionIPsSQL = `UPDATE sessions SET ip = '' WHERE id IN
		(SELECT id FROM sessions WHERE ip <> '' AND created_at < $1 LIMIT $2) AND ip <> ''`
	// Users go by windows of ids ($3 is the window's start, exclusive), as
	// on SQLite.
	retainCurrentLoginIPsSQL = `UPDATE users SET current_login_ip = ''
		WHERE id > $3 AND id <= $3 + $2 AND current_login_ip <> '' AND current_login_at < $1`
	retainLastLoginIPsSQL = `UPDATE users SET last_login_ip = ''
		WHERE id > $3 AND id <= $3 + $2 AND last_login_ip <> '' AND last_login_at < $1`
	retainLastUserSQL = `SELECT coalesce(max(id), 0) FROM users`
	retainAuditSQL    = `DELETE FROM audit WHERE id IN
		(SELECT id FROM audit WHERE time < $1 ORDER BY time LIMIT $2)`

	// The audit trail's addresses are blanked oldest first from a mark
	// kept in meta, as on SQLite. Overlapping runs (several gateways) may
	// blank the same batch: the second changes and counts nothing, and
	// the mark only moves forward.
	retainAuditIPsNextSQL = `SELECT count(*), coalesce(max(time), 0) FROM
		(SELECT time FROM audit WHERE time >= $1 AND time < $2 AND client_ip <> '' ORDER BY time LIMIT $3) b`
	retainAuditIPsSQL = `UPDATE audit SET client_ip = '' WHERE time >= $1 AND time <= $2 AND client_ip <> ''`
	retainMarkSQL     = `SELECT value FROM meta WHERE key = $1`
	retainSetMarkSQL  = `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE excluded.value > meta.value`
	auditIPsMark = "retain_audit_ips_before"
)

// Retain runs each batch as a statement (or, for the audit trail's
// addresses, a transaction) of its own, so that no run holds many row
// locks for long.
func (s *Store) Retain(ctx context.Context, p store.RetainPolicy) (store.RetainResult, error) {
	var r store.RetainResult
	batch := p.Batch
	if batch <= 0 {
		batch = store.DefaultRetainBatch
	}
	steps := []struct {
		what  string
		cut   time.Time
		query string
		n     *int
		byID  bool // the query takes a window of user ids
	}{
		{"deleting ended sessions", p.SessionsEndedBefore, retainSessionsSQL, &r.SessionsDeleted, false},
		{"blanking sessions' addresses", p.IPsBefore, retainSessionIPsSQL, &r.SessionIPsBlanked, false},
		{"blanking current logins' addresses", p.IPsBefore, retainCurrentLoginIPsSQL, &r.LoginIPsBlanked, true},
		{"blanking last logins' addresses", p.IPsBefore, retainLastLoginIPsSQL, &r.LoginIPsBlanked, true},
		{"deleting audit records", p.AuditBefore, retainAuditSQL, &r.AuditDeleted, false},
	}
	for _, st := range steps {
		if st.cut.IsZero() {
			continue
		}
		fail := func(err error) (store.RetainResult, error) {
			return r, s.wrap(fmt.Sprintf("retention: %s before %s", st.what, st.cut.UTC().Format(time.RFC3339)), err)
		}
		var lastID int64
		if st.byID {
			if err := s.pool.QueryRow(ctx, retainLastUserSQL).Scan(&lastID); err != nil {
				return fail(err)
			}
		}
		for from := int64(0); ; from += int64(batch) {
			if st.byID && from >= lastID {
				break
			}
			args := []any{st.cut.UnixNano(), batch}
			if st.byID {
				args = append(args, from)
			}
			tag, err := s.pool.Exec(ctx, st.query, args...)
			if err != nil {
				return fail(err)
			}
			n := int(tag.RowsAffected())
			*st.n += n
			// Fewer than a batch: none are left, or a concurrent run took
			// some, and the next run finishes.
			if !st.byID && n < batch {
				break
			}
		}
	}
	if !p.IPsBefore.IsZero() {
		n, err := s.retainAuditIPs(ctx, p.IPsBefore, p.AuditBefore, batch)
		r.AuditIPsBlanked = n
		if err != nil {
			return r, s.wrap(fmt.Sprintf("retention: blanking audit records' addresses before %s", p.IPsBefore.UTC().Format(time.RFC3339)), err)
		}
	}
	return r, nil
}

// retainAuditIPs blanks the addresses of audit records before cut, a batch
// at a time from the mark, moving the mark in each batch's transaction.
// Records before deleted (if set) are gone: the search starts there at the
// earliest.
func (s *Store) retainAuditIPs(ctx context.Context, cut, deleted time.Time, batch int) (int, error) {
	total := 0
	for done := false; !done; {
		// Set by the batch, counted only once it has committed.
		var blanked int
		var last bool
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			blanked, last = 0, false
			var raw []byte
			err := tx.QueryRow(ctx, retainMarkSQL, auditIPsMark).Scan(&raw)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("reading the mark: %w", err)
			}
			from := max(parseMark(raw), nanosOrZero(deleted))
			to := cut.UnixNano()
			if from >= to {
				last = true
				return nil
			}
			var n int
			var newest int64
			if err := tx.QueryRow(ctx, retainAuditIPsNextSQL, from, to, batch).Scan(&n, &newest); err != nil {
				return err
			}
			next := to
			if n > 0 {
				tag, err := tx.Exec(ctx, retainAuditIPsSQL, from, newest)
				if err != nil {
					return err
				}
				blanked = int(tag.RowsAffected())
				if n == batch {
					// Records after the batch's newest may have addresses
					// still.
					next = newest + 1
				}
			}
			last = next == to
			_, err = tx.Exec(ctx, retainSetMarkSQL, auditIPsMark, formatMark(next))
			return err
		})
		if err != nil {
			return total, err
		}
		total += blanked
		done = last
	}
	return total, nil
}

// The mark is kept as fixed-width decimal digits, so that comparing two as
// bytes (in retainSetMarkSQL) compares them as numbers; the SQLite store
// keeps it alike, and a copy between the two carries it over.
func formatMark(n int64) []byte { return fmt.Appendf(nil, "%019d", max(n, 0)) }

// parseMark reads a mark; none (or one that does not parse) is 0, which
// searches the whole trail once.
func parseMark(b []byte) int64 {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func nanosOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
