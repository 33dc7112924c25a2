package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const mailColumns = `id, kind, site, ref, to_addr, to_name, subject, text_body, html_body, state, attempts,
	last_error, created_at, next_attempt_at, expires_at, lease_until, sent_at, failed_at`

// mailListColumns are mailColumns with the bodies left out: a listing never
// needs them, and what is not read cannot be printed by mistake.
const mailListColumns = `id, kind, site, ref, to_addr, to_name, subject, '', '', state, attempts,
	last_error, created_at, next_attempt_at, expires_at, lease_until, sent_at, failed_at`

func scanMail(row interface{ Scan(...any) error }, m *store.Mail) error {
	var created, next, expires, lease, sent, failed sql.NullInt64
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
	}
	var id int64
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := s.txQueryRow(ctx, tx, `INSERT INTO outbox
			(kind, site, ref, to_addr, to_name, subject, text_body, html_body, state, attempts,
			 last_error, created_at, next_attempt_at, expires_at, lease_until)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?) RETURNING id`,
			m.Kind, m.Site, m.Ref, m.To, m.ToName, m.Subject, m.Text, m.HTML, state, attempts,
			created.UnixNano(), next.UnixNano(), nanos(m.ExpiresAt), nanos(m.LeaseUntil)).Scan(&id)
		if err != nil {
			return err
		}
		if m.Ref == "" {
			return nil
		}
		_, err = s.txExec(ctx, tx, `UPDATE outbox
			SET state = 'failed', failed_at = ?, last_error = ?, text_body = '', html_body = ''
			WHERE state = 'queued' AND kind = ? AND ref = ? AND id <> ?`,
			created.UnixNano(), fmt.Sprintf("superseded by mail %d", id), m.Kind, m.Ref, id)
		return err
	})
	if err != nil {
		return fail(err)
	}
	m.ID, m.State, m.Attempts, m.CreatedAt, m.NextAttemptAt = id, state, attempts, created, next
	return nil
}

// ClaimMail first asks the read pool whether anything is due, so that an
// idle worker polling every second never takes the write lock. The claim
// itself is one UPDATE on the writer, inside BEGIN IMMEDIATE, which makes
// it the only writer of the file (across processes too) while it runs.
func (s *Store) ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]store.Mail, error) {
	if limit <= 0 {
		limit = 1
	}
	if !leaseUntil.After(now) {
		return nil, fmt.Errorf("claiming mail: lease until %v is not after %v", leaseUntil, now)
	}
	var due bool
	if err := s.r.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM outbox WHERE state = 'queued' AND next_attempt_at <= ?1)
		OR EXISTS (SELECT 1 FROM outbox WHERE state = 'sending' AND lease_until <= ?1)`,
		now.UnixNano()).Scan(&due); err != nil {
		return nil, fmt.Errorf("looking for due mail: %w", err)
	}
	if !due {
		return nil, nil
	}
	var out []store.Mail
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE outbox
			SET state = 'sending', lease_until = ?1, attempts = attempts + 1
			WHERE id IN (
				SELECT id FROM (
					SELECT id, next_attempt_at AS due FROM outbox WHERE state = 'queued' AND next_attempt_at <= ?2
					UNION ALL
					SELECT id, lease_until AS due FROM outbox WHERE state = 'sending' AND lease_until <= ?2
				) ORDER BY due, id LIMIT ?3)
			RETURNING `+mailColumns,
			leaseUntil.UnixNano(), now.UnixNano(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m store.Mail
			if err := scanMail(rows, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
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
		SET state = 'sent', sent_at = ?, lease_until = NULL, text_body = '', html_body = ''
		WHERE id = ? AND state = 'sending' AND lease_until = ?`, at.UnixNano(), id, nanos(leaseUntil))
}

// MarkMailFailed queues the mail again for retryAt, or gives it up (and
// blanks its bodies: a mail that will never be sent need not keep its
// credential) when retryAt is zero.
func (s *Store) MarkMailFailed(ctx context.Context, id int64, leaseUntil, at time.Time, errMsg string, retryAt time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	if retryAt.IsZero() {
		return s.finishMail(ctx, id, leaseUntil, fmt.Sprintf("giving up mail %d", id), `UPDATE outbox
			SET state = 'failed', failed_at = ?, last_error = ?, lease_until = NULL, text_body = '', html_body = ''
			WHERE id = ? AND state = 'sending' AND lease_until = ?`, at.UnixNano(), errMsg, id, nanos(leaseUntil))
	}
	return s.finishMail(ctx, id, leaseUntil, fmt.Sprintf("queueing mail %d again", id), `UPDATE outbox
		SET state = 'queued', next_attempt_at = ?, last_error = ?, lease_until = NULL
		WHERE id = ? AND state = 'sending' AND lease_until = ?`, retryAt.UnixNano(), errMsg, id, nanos(leaseUntil))
}

// finishMail runs a conditional update of a claimed mail and, when it
// matches nothing, tells a missing mail (ErrNotFound) from one no longer
// claimed under leaseUntil (ErrConflict), in the same transaction.
func (s *Store) finishMail(ctx context.Context, id int64, leaseUntil time.Time, what, query string, args ...any) error {
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, query, args...)
		if err := oneRow(res, err); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var state string
		err = s.txQueryRow(ctx, tx, `SELECT state FROM outbox WHERE id = ?`, id).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
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
	err := scanMail(s.r.QueryRowContext(ctx, `SELECT `+mailColumns+` FROM outbox WHERE id = ?`, id), &m)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("mail %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading mail %d: %w", id, err)
	}
	return &m, nil
}

// Mails lists newest first, without bodies; a zero Limit means no limit.
func (s *Store) Mails(ctx context.Context, f store.MailFilter) ([]store.Mail, error) {
	var q strings.Builder
	var args []any
	q.WriteString(`SELECT ` + mailListColumns + ` FROM outbox WHERE 1`)
	for _, c := range []struct{ col, val string }{{"state", f.State}, {"kind", f.Kind}, {"ref", f.Ref}} {
		if c.val != "" {
			q.WriteString(` AND ` + c.col + ` = ?`)
			args = append(args, c.val)
		}
	}
	q.WriteString(` ORDER BY created_at DESC, id DESC`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	return listRows(ctx, s.r, fmt.Sprintf("mails %+v", f), q.String(), args, scanMail)
}
