package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const mailColumns = `id, kind, site, ref, to_addr, to_name, subject, text_body, html_body, state, attempts,
	last_error, created_at, next_attempt_at, expires_at, lease_until, sent_at, failed_at`

// mailListColumns are mailColumns with the bodies left out: a listing never
// needs them, and what is not read cannot be printed by mistake.
const mailListColumns = `id, kind, site, ref, to_addr, to_name, subject, '', '', state, attempts,
	last_error, created_at, next_attempt_at, expires_at, lease_until, sent_at, failed_at`

func scanMail(row scanner, m *store.Mail) error {
	var created, next, expires, lease, sent, failed *int64
	if err := row.Scan(&m.ID, &m.Kind, &m.Site, &m.Ref, &m.To, &m.ToName, &m.Subject, &m.Text, &m.HTML, &m.State,
		&m.Attempts, &m.LastError, &created, &next, &expires, &lease, &sent, &failed); err != nil {
		return err
	}
	m.CreatedAt, m.NextAttemptAt, m.ExpiresAt = fromNanos(created), fromNanos(next), fromNanos(expires)
	m.LeaseUntil, m.SentAt, m.FailedAt = fromNanos(lease), fromNanos(sent), fromNanos(failed)
	return nil
}

// EnqueueMail inserts m and supersedes queued mails with its kind and ref in
// the same transaction. See store.Outbox.
func (s *Store) EnqueueMail(ctx context.Context, m *store.Mail) error {
	fail := func(err error) error {
		return fmt.Errorf("enqueueing %s mail to %q: %w", m.Kind, m.To, err)
	}
	created := m.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	next := m.NextAttemptAt
	if next.IsZero() {
		next = created
	}
	state, attempts := store.MailQueued, 0
	if !m.LeaseUntil.IsZero() {
		state, attempts = store.MailSending, 1
	}
	switch {
	case m.To == "":
		return fail(errors.New("no recipient"))
	case m.Kind == "":
		return fail(errors.New("no kind"))
	case !m.LeaseUntil.IsZero() && !m.LeaseUntil.After(created):
		return fail(fmt.Errorf("lease until %v is not after %v", m.LeaseUntil, created))
	case !storable(m.Kind) || !storable(m.Ref) || !storable(m.To):
		// Replacing bytes would make another kind, ref or address.
		return fail(errors.New("kind, ref or recipient is not valid UTF-8"))
	}
	// Subject and bodies are stored as text makes them (see text), and
	// written back, so that what is sent is what was queued.
	m.ToName, m.Subject, m.Text, m.HTML = text(m.ToName), text(m.Subject), text(m.Text), text(m.HTML)
	var id int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO outbox
			(kind, site, ref, to_addr, to_name, subject, text_body, html_body, state, attempts,
			 last_error, created_at, next_attempt_at, expires_at, lease_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11, $12, $13, $14) RETURNING id`,
			m.Kind, text(m.Site), m.Ref, m.To, m.ToName, m.Subject, m.Text, m.HTML, state, attempts,
			created.UnixNano(), next.UnixNano(), nanos(m.ExpiresAt), nanos(m.LeaseUntil)).Scan(&id)
		if err != nil {
			return err
		}
		if m.Ref == "" {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE outbox
			SET state = 'failed', failed_at = $1, last_error = $2, text_body = '', html_body = ''
			WHERE state = 'queued' AND kind = $3 AND ref = $4 AND id <> $5`,
			created.UnixNano(), fmt.Sprintf("superseded by mail %d", id), m.Kind, m.Ref, id)
		return err
	})
	if err != nil {
		return fail(err)
	}
	m.ID, m.State, m.Attempts, m.CreatedAt, m.NextAttemptAt = id, state, attempts, created, next
	return nil
}

// claimMailSQL is the claim: one UPDATE of the mails a subquery picks, due
// first. FOR UPDATE SKIP LOCKED makes workers in any number of gateways
// pass over the rows another is claiming instead of waiting for them, and
// a row another claim changed meanwhile is re-checked against its newest
// version, so no two workers hold one mail at once.
const claimMailSQL = `UPDATE outbox
	SET state = 'sending', lease_until = $1, attempts = attempts + 1
	WHERE id IN (
		SELECT id FROM outbox
		WHERE (state = 'queued' AND next_attempt_at <= $2) OR (state = 'sending' AND lease_until <= $2)
		ORDER BY CASE WHEN state = 'queued' THEN next_attempt_at ELSE lease_until END, id
		LIMIT $3
		FOR UPDATE SKIP LOCKED)
	RETURNING ` + mailColumns

// ClaimMail claims up to limit mails due at now with one statement (see
// claimMailSQL) and returns them oldest due first.
func (s *Store) ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]store.Mail, error) {
	if limit <= 0 {
		limit = 1
	}
	if !leaseUntil.After(now) {
		return nil, fmt.Errorf("claiming mail: lease until %v is not after %v", leaseUntil, now)
	}
	out, err := listRows(ctx, s.pool, "mail", claimMailSQL, []any{leaseUntil.UnixNano(), now.UnixNano(), limit}, scanMail)
	if err != nil {
		return nil, fmt.Errorf("claiming mail due at %v: %w", now, err)
	}
	slices.SortFunc(out, func(a, b store.Mail) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// MarkMailSent blanks the bodies with the move to sent: the credential in
// them has been handed over, and the database need not keep it.
func (s *Store) MarkMailSent(ctx context.Context, id int64, leaseUntil, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	return s.finishMail(ctx, id, leaseUntil, fmt.Sprintf("marking mail %d sent", id), `UPDATE outbox
		SET state = 'sent', sent_at = $1, lease_until = NULL, text_body = '', html_body = ''
		WHERE id = $2 AND state = 'sending' AND lease_until = $3`, at.UnixNano(), id, nanos(leaseUntil))
}

// MarkMailFailed queues the mail again for retryAt, or gives it up (and
// blanks its bodies) when retryAt is zero.
func (s *Store) MarkMailFailed(ctx context.Context, id int64, leaseUntil, at time.Time, errMsg string, retryAt time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	if retryAt.IsZero() {
		return s.finishMail(ctx, id, leaseUntil, fmt.Sprintf("giving up mail %d", id), `UPDATE outbox
			SET state = 'failed', failed_at = $1, last_error = $2, lease_until = NULL, text_body = '', html_body = ''
			WHERE id = $3 AND state = 'sending' AND lease_until = $4`, at.UnixNano(), text(errMsg), id, nanos(leaseUntil))
	}
	return s.finishMail(ctx, id, leaseUntil, fmt.Sprintf("queueing mail %d again", id), `UPDATE outbox
		SET state = 'queued', next_attempt_at = $1, last_error = $2, lease_until = NULL
		WHERE id = $3 AND state = 'sending' AND lease_until = $4`, retryAt.UnixNano(), text(errMsg), id, nanos(leaseUntil))
}

// finishMail runs a conditional update of a claimed mail and, when it
// matches nothing, tells a missing mail (ErrNotFound) from one no longer
// claimed under leaseUntil (ErrConflict), in the same transaction.
func (s *Store) finishMail(ctx context.Context, id int64, leaseUntil time.Time, what, query string, args ...any) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := oneRow(tx.Exec(ctx, query, args...))
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var state string
		err = tx.QueryRow(ctx, `SELECT state FROM outbox WHERE id = $1`, id).Scan(&state)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		}
		return fmt.Errorf("mail is %s, not sending under lease until %v: %w", state, leaseUntil, store.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Mail returns store.ErrNotFound for an id with no mail.
func (s *Store) Mail(ctx context.Context, id int64) (*store.Mail, error) {
	var m store.Mail
	err := scanMail(s.pool.QueryRow(ctx, `SELECT `+mailColumns+` FROM outbox WHERE id = $1`, id), &m)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("mail %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading mail %d: %w", id, err)
	}
	return &m, nil
}

// Mails lists newest first (by CreatedAt, then ID), without bodies; a zero
// Limit means no limit.
func (s *Store) Mails(ctx context.Context, f store.MailFilter) ([]store.Mail, error) {
	var w where
	for _, c := range []struct{ col, val string }{{"state", f.State}, {"kind", f.Kind}, {"ref", f.Ref}} {
		if c.val != "" {
			if !storable(c.val) {
				return nil, nil
			}
			w.add(c.col+` = ?`, c.val)
		}
	}
	q := `SELECT ` + mailListColumns + ` FROM outbox` + w.sql() + ` ORDER BY created_at DESC, id DESC` + w.limit(f.Limit)
	return listRows(ctx, s.pool, fmt.Sprintf("mails %+v", f), q, w.args, scanMail)
}
