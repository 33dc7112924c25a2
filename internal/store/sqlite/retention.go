package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Retention's statements take a cut (?1, unix nanoseconds) and a batch
// size (?2). Each picks at most a batch of rows by an index (migration 13
// for sessions; audit_time) and deletes or changes them.
const (
	// Deleting a session fires the sessions_deleted trigger, which records
	// a change per session (see 0007_changes.sql): gateways drop it from
	// their caches, as for any other deletion. An ended session is refused
	// by them anyway, so these changes are redundant, but the trigger is
	// what guarantees no way of deleting can forget one; the changes are
	// pruned after an hour.
	retainSessionsSQL = `DELETE FROM sessions WHERE rowid IN
		(SELECT rowid FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1 LIMIT ?2)`
	retainSessionIPsSQL = `UPDATE sessions SET ip = '' WHERE rowid IN
		(SELECT rowid FROM sessions WHERE ip <> '' AND created_at < ?1 LIMIT ?2)`
	// Users are not indexed by login time (every login would move the
	// entries): these go through the table by id, a window of ids (?3 is
	// the window's start, exclusive) a batch, which reads each row once
	// however many need blanking.
	retainCurrentLoginIPsSQL = `UPDATE users SET current_login_ip = ''
		WHERE id > ?3 AND id <= ?3 + ?2 AND current_login_ip <> '' AND current_login_at < ?1`
	retainLastLoginIPsSQL = `UPDATE users SET last_login_ip = ''
		WHERE id > ?3 AND id <= ?3 + ?2 AND last_login_ip <> '' AND last_login_at < ?1`
	retainLastUserSQL = `SELECT coalesce(max(id), 0) FROM users`
	retainAuditSQL    = `DELETE FROM audit WHERE id IN
		(SELECT id FROM audit WHERE time < ?1 ORDER BY time LIMIT ?2)`

	// The audit trail's addresses are blanked oldest first, from where the
	// last run stopped (auditIPsMark in meta): "every record before the
	// mark has no address". Searching the whole trail before the cut on
	// every run would read every record ever kept, and an index of the
	// records with an address would cost every audit write an entry.
	retainAuditIPsNextSQL = `SELECT count(*), coalesce(max(time), 0) FROM
		(SELECT time FROM audit WHERE time >= ?1 AND time < ?2 AND client_ip <> '' ORDER BY time LIMIT ?3)`
	retainAuditIPsSQL = `UPDATE audit SET client_ip = '' WHERE time >= ?1 AND time <= ?2 AND client_ip <> ''`
	retainMarkSQL     = `SELECT value FROM meta WHERE key = ?`
	retainSetMarkSQL  = `INSERT INTO meta (key, value) VALUES (?1, ?2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE excluded.value > meta.value`
	auditIPsMark = "retain_audit_ips_before"
)

// Retain runs each step in batches, each batch one job of the group
// committer, so that other writers' transactions go between two batches
// instead of waiting for the whole run.
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
		// byID: the query takes a window of user ids, not the next batch
		// of rows an index finds.
		byID bool
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
			return r, fmt.Errorf("retention: %s before %s: %w", st.what, st.cut.UTC().Format(time.RFC3339), err)
		}
		// Users created after this read have logged in since: their
		// logins are not old.
		var lastID int64
		if st.byID {
			if err := s.r.QueryRowContext(ctx, retainLastUserSQL).Scan(&lastID); err != nil {
				return fail(err)
			}
		}
		for from := int64(0); ; from += int64(batch) {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
			if st.byID && from >= lastID {
				break
			}
			var n int64
			err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				args := []any{st.cut.UnixNano(), batch}
				if st.byID {
					args = append(args, from)
				}
				res, err := s.txExec(ctx, tx, st.query, args...)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return fail(err)
			}
			*st.n += int(n)
			if !st.byID && n < int64(batch) {
				break
			}
		}
	}
	if !p.IPsBefore.IsZero() {
		n, err := s.retainAuditIPs(ctx, p.IPsBefore, p.AuditBefore, batch)
		r.AuditIPsBlanked = n
		if err != nil {
			return r, fmt.Errorf("retention: blanking audit records' addresses before %s: %w", p.IPsBefore.UTC().Format(time.RFC3339), err)
		}
	}
	return r, nil
}

// retainAuditIPs blanks the addresses of audit records before cut, a batch
// at a time from the mark, moving the mark with each batch in the batch's
// transaction. Records before deleted (if set) are gone: the search starts
// there at the earliest.
func (s *Store) retainAuditIPs(ctx context.Context, cut, deleted time.Time, batch int) (int, error) {
	total := 0
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		// Set by the batch, counted only once it has committed.
		var blanked int
		var last bool
		err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			blanked, last = 0, false
			var raw []byte
			err := s.txQueryRow(ctx, tx, retainMarkSQL, auditIPsMark).Scan(&raw)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
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
			if err := s.txQueryRow(ctx, tx, retainAuditIPsNextSQL, from, to, batch).Scan(&n, &newest); err != nil {
				return err
			}
			next := to
			if n > 0 {
				res, err := s.txExec(ctx, tx, retainAuditIPsSQL, from, newest)
				if err != nil {
					return err
				}
				m, err := res.RowsAffected()
				if err != nil {
					return err
				}
				blanked = int(m)
				if n == batch {
					// Records after the batch's newest may have addresses
					// still.
					next = newest + 1
				}
			}
			last = next == to
			_, err = s.txExec(ctx, tx, retainSetMarkSQL, auditIPsMark, formatMark(next))
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
// bytes (in retainSetMarkSQL) compares them as numbers.
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
