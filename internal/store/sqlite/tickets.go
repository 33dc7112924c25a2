package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const ticketColumns = `uuid, place, purpose, password_hash, password_kind, created_at, expires_at,
	user_id, data, state, lease_until, used_at, use_ip, use_user_agent, use_status, revoked_at`

func scanTicket(row interface{ Scan(...any) error }, t *store.Ticket) error {
	var created, expires, user, lease, used, revoked sql.NullInt64
	if err := row.Scan(&t.UUID, &t.Place, &t.Purpose, &t.PasswordHash, &t.PasswordKind, &created, &expires,
		&user, &t.Data, &t.State, &lease, &used, &t.UseIP, &t.UseUserAgent, &t.UseStatus, &revoked); err != nil {
		return err
	}
	t.UserID = user.Int64
	t.CreatedAt, t.ExpiresAt, t.LeaseUntil = fromNanos(created), fromNanos(expires), fromNanos(lease)
	t.UsedAt, t.RevokedAt = fromNanos(used), fromNanos(revoked)
	return nil
}

// CreateTicket stores t as given, so that a ticket can be created in any
// state, with these defaults, written back into t: State valid, Data "{}"
// and CreatedAt now. UUID, PasswordHash and PasswordKind are required, Data
// must be a JSON object and State one of the Ticket* states. A taken UUID
// is store.ErrConflict; a UserID with no user is store.ErrNotFound.
func (s *Store) CreateTicket(ctx context.Context, t *store.Ticket) error {
	fail := func(err error) error {
		return fmt.Errorf("creating ticket %q for %s/%s: %w", t.UUID, t.Place, t.Purpose, err)
	}
	data, state, err := store.NewTicketFields(t)
	if err != nil {
		return fail(err)
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	// data is bound as a string so that it is stored as TEXT, which the
	// JSON functions of SQLite (and a human with the sqlite3 shell) expect.
	_, err = s.w.ExecContext(ctx, `INSERT INTO tickets
		(uuid, place, purpose, password_hash, password_kind, created_at, expires_at,
		 user_id, data, state, lease_until, used_at, use_ip, use_user_agent, use_status, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.UUID, t.Place, t.Purpose, t.PasswordHash, t.PasswordKind, created.UnixNano(), nanos(t.ExpiresAt),
		nullID(t.UserID), string(data), state, nanos(t.LeaseUntil), nanos(t.UsedAt), t.UseIP, t.UseUserAgent,
		int64(t.UseStatus), nanos(t.RevokedAt))
	switch {
	case isUniqueViolation(err):
		return fail(fmt.Errorf("uuid taken: %w", store.ErrConflict))
	case isForeignKeyViolation(err):
		return fail(fmt.Errorf("user %d: %w", t.UserID, store.ErrNotFound))
	case err != nil:
		return fail(err)
	}
	t.CreatedAt, t.State, t.Data = created, state, data
	return nil
}

// Ticket returns store.ErrNotFound for a uuid with no ticket.
func (s *Store) Ticket(ctx context.Context, uuid string) (*store.Ticket, error) {
	var t store.Ticket
	err := scanTicket(s.ticketByUUID.QueryRowContext(ctx, uuid), &t)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("ticket %q: %w", uuid, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading ticket %q: %w", uuid, err)
	}
	return &t, nil
}

// Tickets lists newest first (by CreatedAt, then most recently inserted);
// place, purpose and state match exactly, and a zero Limit means no limit.
func (s *Store) Tickets(ctx context.Context, f store.TicketFilter) ([]store.Ticket, error) {
	var q strings.Builder
	var args []any
	q.WriteString(`SELECT ` + ticketColumns + ` FROM tickets WHERE 1`)
	if f.Place != "" {
		q.WriteString(` AND place = ?`)
		args = append(args, f.Place)
	}
	if f.Purpose != "" {
		q.WriteString(` AND purpose = ?`)
		args = append(args, f.Purpose)
	}
	if f.State != "" {
		q.WriteString(` AND state = ?`)
		args = append(args, f.State)
	}
	q.WriteString(` ORDER BY created_at DESC, rowid DESC`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	return listRows(ctx, s.r, fmt.Sprintf("tickets %+v", f), q.String(), args, scanTicket)
}

// RevokeTicket revokes a valid or in_use ticket at at (now if zero) and
// drops its lease, so that the claim's FinishTicket finds nothing to
// finish. The refusal is decided in the same transaction as the update:
// a missing ticket is store.ErrNotFound, one in any other state
// store.ErrConflict, and either way nothing is written.
func (s *Store) RevokeTicket(ctx context.Context, uuid string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE tickets SET state = 'revoked', revoked_at = ?, lease_until = NULL
			WHERE uuid = ? AND state IN ('valid', 'in_use')`, at.UnixNano(), uuid)
		if err := oneRow(res, err); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var state string
		err = s.txQueryRow(ctx, tx, `SELECT state FROM tickets WHERE uuid = ?`, uuid).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		}
		return fmt.Errorf("ticket is %s: %w", state, store.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("revoking ticket %q: %w", uuid, err)
	}
	return nil
}

// ClaimTicket runs in one transaction on the writer, which SQLite's
// BEGIN IMMEDIATE makes the only writer of the file while it runs, so the
// conditional UPDATE lets exactly one of any number of concurrent claims
// through. A lease lapses at leaseUntil itself: a claim at that instant
// may take the ticket over. leaseUntil must be after at (a zero at means
// now), or the claim would be open to takeover from the start; otherwise it
// is an error that is not store.ErrConflict.
//
// The audit record is written as given, with a zero Time stored as at, and
// written back with its ID only once the transaction commits; a nil audit
// writes none. A refused claim is store.ErrConflict and writes nothing.
func (s *Store) ClaimTicket(ctx context.Context, uuid string, at, leaseUntil time.Time, audit *store.AuditEvent) error {
	if at.IsZero() {
		at = time.Now()
	}
	if !leaseUntil.After(at) {
		return fmt.Errorf("claiming ticket %q: lease until %v is not after %v", uuid, leaseUntil, at)
	}
	var event store.AuditEvent
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE tickets SET state = 'in_use', lease_until = ?
			WHERE uuid = ?
			  AND (state = 'valid' OR (state = 'in_use' AND lease_until <= ?))
			  AND (expires_at IS NULL OR expires_at > ?)`,
			leaseUntil.UnixNano(), uuid, at.UnixNano(), at.UnixNano())
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("not claimable: %w", store.ErrConflict)
			}
			return fmt.Errorf("recording claim: %w", err)
		}
		if audit != nil {
			event = *audit
			if err := s.insertAuditTx(ctx, tx, &event, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("claiming ticket %q: %w", uuid, err)
	}
	if audit != nil {
		*audit = event
	}
	return nil
}

// FinishTicket applies only while the ticket is in_use under exactly the
// lease leaseUntil (compared in unix nanoseconds, as stored), whether or
// not that lease has lapsed meanwhile: a lapsed claim that nobody took over
// is still the request's own. Otherwise it is store.ErrConflict with
// nothing written. A zero at means now.
//
// With a non-zero auditID the record's status and latency (kept to the
// microsecond) are set in the same transaction. A record that does not
// exist is not an error: the ticket's state is what must not be lost, and a
// ticket left in_use for want of a log row could be claimed again once its
// lease lapsed.
func (s *Store) FinishTicket(ctx context.Context, uuid string, leaseUntil time.Time, stamp bool, at time.Time,
	ip, userAgent string, status int, auditID int64, latency time.Duration) error {
	if at.IsZero() {
		at = time.Now()
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var res sql.Result
		var err error
		if stamp {
			res, err = s.txExec(ctx, tx, `UPDATE tickets
				SET state = 'used', used_at = ?, use_ip = ?, use_user_agent = ?, use_status = ?, lease_until = NULL
				WHERE uuid = ? AND state = 'in_use' AND lease_until = ?`,
				at.UnixNano(), ip, userAgent, int64(status), uuid, nanos(leaseUntil))
		} else {
			res, err = s.txExec(ctx, tx, `UPDATE tickets SET state = 'valid', lease_until = NULL
				WHERE uuid = ? AND state = 'in_use' AND lease_until = ?`,
				uuid, nanos(leaseUntil))
		}
		if err := oneRow(res, err); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no longer claimed under lease until %v: %w", leaseUntil, store.ErrConflict)
			}
			return fmt.Errorf("recording finish: %w", err)
		}
		if auditID != 0 {
			if _, err := s.txExec(ctx, tx, `UPDATE audit SET status = ?, latency_us = ? WHERE id = ?`,
				int64(status), latency.Microseconds(), auditID); err != nil {
				return fmt.Errorf("setting status of audit event %d: %w", auditID, err)
			}
		}
		return nil
	})
	if err != nil {
		what := "giving back"
		if stamp {
			what = "stamping"
		}
		return fmt.Errorf("%s ticket %q (status %d): %w", what, uuid, status, err)
	}
	return nil
}

// ExpireTickets marks valid tickets whose expiry is at or before at (now if
// zero) as expired. A ticket in_use is left alone, even with a lapsed
// lease: its claim may still finish, and a new claim is refused by the
// expiry anyway.
func (s *Store) ExpireTickets(ctx context.Context, at time.Time) (int, error) {
	if at.IsZero() {
		at = time.Now()
	}
	res, err := s.w.ExecContext(ctx, `UPDATE tickets SET state = 'expired'
		WHERE state = 'valid' AND expires_at IS NOT NULL AND expires_at <= ?`, at.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("expiring tickets at %v: %w", at, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("expiring tickets at %v: %w", at, err)
	}
	return int(n), nil
}
