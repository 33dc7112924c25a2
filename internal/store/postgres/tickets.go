package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const ticketColumns = `uuid, place, purpose, password_hash, password_kind, created_at, expires_at,
	user_id, data, state, lease_until, used_at, use_ip, use_user_agent, use_status, revoked_at`

func scanTicket(row scanner, t *store.Ticket) error {
	var created, expires, user, lease, used, revoked *int64
	var data string
	if err := row.Scan(&t.UUID, &t.Place, &t.Purpose, &t.PasswordHash, &t.PasswordKind, &created, &expires,
		&user, &data, &t.State, &lease, &used, &t.UseIP, &t.UseUserAgent, &t.UseStatus, &revoked); err != nil {
		return err
	}
	t.Data = []byte(data)
	t.UserID = 0
	if user != nil {
		t.UserID = *user
	}
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
	if !storable(t.UUID) || !storable(t.Place) || !storable(t.Purpose) || !storable(t.PasswordKind) || !storable(string(data)) {
		// json.Valid accepts invalid UTF-8 inside strings; PostgreSQL does not.
		return fail(errors.New("uuid, place, purpose, password kind or data is not valid UTF-8"))
	}
	created := t.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO tickets
		(uuid, place, purpose, password_hash, password_kind, created_at, expires_at,
		 user_id, data, state, lease_until, used_at, use_ip, use_user_agent, use_status, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		t.UUID, t.Place, t.Purpose, t.PasswordHash, t.PasswordKind, created.UnixNano(), nanos(t.ExpiresAt),
		nullID(t.UserID), string(data), state, nanos(t.LeaseUntil), nanos(t.UsedAt), text(t.UseIP), text(t.UseUserAgent),
		int32(t.UseStatus), nanos(t.RevokedAt))
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
	if !storable(uuid) {
		return nil, fmt.Errorf("ticket %q: %w", uuid, store.ErrNotFound)
	}
	var t store.Ticket
	err := scanTicket(s.pool.QueryRow(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE uuid = $1`, uuid), &t)
	if errors.Is(err, pgx.ErrNoRows) {
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
	var w where
	for _, c := range []struct{ cond, val string }{
		{`place = ?`, f.Place}, {`purpose = ?`, f.Purpose}, {`state = ?`, f.State},
	} {
		if c.val != "" {
			if !storable(c.val) {
				return nil, nil
			}
			w.add(c.cond, c.val)
		}
	}
	q := `SELECT ` + ticketColumns + ` FROM tickets` + w.sql() + ` ORDER BY created_at DESC, seq DESC` + w.limit(f.Limit)
	return listRows(ctx, s.pool, fmt.Sprintf("tickets %+v", f), q, w.args, scanTicket)
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
	if !storable(uuid) {
		return fmt.Errorf("revoking ticket %q: %w", uuid, store.ErrNotFound)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tickets SET state = 'revoked', revoked_at = $1, lease_until = NULL
			WHERE uuid = $2 AND state IN ('valid', 'in_use')`, at.UnixNano(), uuid)
		if err := oneRow(tag, err); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var state string
		err = tx.QueryRow(ctx, `SELECT state FROM tickets WHERE uuid = $1`, uuid).Scan(&state)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
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

// ClaimTicket moves the ticket to in_use with one conditional UPDATE;
// concurrent claims queue on the row lock and each re-checks the condition
// against the newest row, so exactly one of them passes. A lease lapses at
// leaseUntil itself: a claim at that instant may take the ticket over.
// leaseUntil must be after at (a zero at means now); otherwise it is an
// error that is not store.ErrConflict.
//
// The audit record is written in the same transaction, with a zero Time
// stored as at, and written back with its ID only once the transaction
// commits; a nil audit writes none. A refused claim is store.ErrConflict
// and writes nothing.
func (s *Store) ClaimTicket(ctx context.Context, uuid string, at, leaseUntil time.Time, audit *store.AuditEvent) error {
	if at.IsZero() {
		at = time.Now()
	}
	if !leaseUntil.After(at) {
		return fmt.Errorf("claiming ticket %q: lease until %v is not after %v", uuid, leaseUntil, at)
	}
	if !storable(uuid) {
		return fmt.Errorf("claiming ticket %q: not claimable: %w", uuid, store.ErrConflict)
	}
	var event store.AuditEvent
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tickets SET state = 'in_use', lease_until = $1
			WHERE uuid = $2
			  AND (state = 'valid' OR (state = 'in_use' AND lease_until <= $3))
			  AND (expires_at IS NULL OR expires_at > $3)`,
			leaseUntil.UnixNano(), uuid, at.UnixNano())
		if err := oneRow(tag, err); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("not claimable: %w", store.ErrConflict)
			}
			return fmt.Errorf("recording claim: %w", err)
		}
		if audit != nil {
			event = *audit
			if err := insertAudit(ctx, tx, &event, at); err != nil {
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
// microsecond) are set in the same transaction; a record that does not
// exist is not an error, as the ticket's state is what must not be lost.
func (s *Store) FinishTicket(ctx context.Context, uuid string, leaseUntil time.Time, stamp bool, at time.Time,
	ip, userAgent string, status int, auditID int64, latency time.Duration) error {
	if at.IsZero() {
		at = time.Now()
	}
	what := "giving back"
	if stamp {
		what = "stamping"
	}
	if !storable(uuid) {
		return fmt.Errorf("%s ticket %q (status %d): not claimed: %w", what, uuid, status, store.ErrConflict)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if stamp {
			err = oneRow(tx.Exec(ctx, `UPDATE tickets
				SET state = 'used', used_at = $1, use_ip = $2, use_user_agent = $3, use_status = $4, lease_until = NULL
				WHERE uuid = $5 AND state = 'in_use' AND lease_until = $6`,
				at.UnixNano(), text(ip), text(userAgent), int32(status), uuid, nanos(leaseUntil)))
		} else {
			err = oneRow(tx.Exec(ctx, `UPDATE tickets SET state = 'valid', lease_until = NULL
				WHERE uuid = $1 AND state = 'in_use' AND lease_until = $2`,
				uuid, nanos(leaseUntil)))
		}
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no longer claimed under lease until %v: %w", leaseUntil, store.ErrConflict)
			}
			return fmt.Errorf("recording finish: %w", err)
		}
		if auditID != 0 {
			if _, err := tx.Exec(ctx, `UPDATE audit SET status = $1, latency_us = $2 WHERE id = $3`,
				int32(status), latency.Microseconds(), auditID); err != nil {
				return fmt.Errorf("setting status of audit event %d: %w", auditID, err)
			}
		}
		return nil
	})
	if err != nil {
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
	tag, err := s.pool.Exec(ctx, `UPDATE tickets SET state = 'expired'
		WHERE state = 'valid' AND expires_at IS NOT NULL AND expires_at <= $1`, at.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("expiring tickets at %v: %w", at, err)
	}
	return int(tag.RowsAffected()), nil
}
