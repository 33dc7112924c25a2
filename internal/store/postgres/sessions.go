package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const sessionColumns = `s.id, s.user_id, s.token_hash, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at,
	s.ip, s.user_agent, s.kind, s.credential_id, s.site`

func scanSession(row scanner, s *store.Session, extra ...any) error {
	var created, seen, expires, revoked *int64
	dest := append([]any{&s.ID, &s.UserID, &s.TokenHash, &created, &seen, &expires, &revoked,
		&s.IP, &s.UserAgent, &s.Kind, &s.CredentialID, &s.Site}, extra...)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt, s.RevokedAt = fromNanos(created), fromNanos(seen), fromNanos(expires), fromNanos(revoked)
	return nil
}

// CreateSession fills in an ID if s has none, CreatedAt if zero, and
// LastSeenAt from CreatedAt, and writes them back into s. ExpiresAt is
// required: a session without an end would never be cleaned up.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session) error {
	return insertSession(ctx, s.pool, sess)
}

// insertSession is CreateSession on q, the pool or a transaction.
func insertSession(ctx context.Context, q querier, sess *store.Session) error {
	id := sess.ID
	if id == "" {
		var b [16]byte
		rand.Read(b[:])
		id = base64.RawURLEncoding.EncodeToString(b[:])
	}
	created := sess.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	seen := sess.LastSeenAt
	if seen.IsZero() {
		seen = created
	}
	fail := func(err error) error {
		return fmt.Errorf("creating session %q for user %d: %w", id, sess.UserID, err)
	}
	switch {
	case len(sess.TokenHash) == 0:
		return fail(errors.New("no token hash"))
	case sess.ExpiresAt.IsZero():
		return fail(errors.New("no expiry"))
	case !storable(id) || !storable(sess.Kind) || !storable(sess.CredentialID) || !storable(sess.Site):
		return fail(errors.New("id, kind, credential id or site is not valid UTF-8"))
	}
	_, err := q.Exec(ctx, `INSERT INTO sessions
		(id, token_hash, user_id, created_at, last_seen_at, expires_at, revoked_at, ip, user_agent, kind, credential_id, site)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		id, sess.TokenHash, sess.UserID, created.UnixNano(), seen.UnixNano(), sess.ExpiresAt.UnixNano(),
		nanos(sess.RevokedAt), text(sess.IP), text(sess.UserAgent), sess.Kind, sess.CredentialID, sess.Site)
	switch {
	case isUniqueViolation(err):
		return fail(store.ErrConflict)
	case isForeignKeyViolation(err):
		return fail(fmt.Errorf("user %d: %w", sess.UserID, store.ErrNotFound))
	case err != nil:
		return fail(err)
	}
	sess.ID, sess.CreatedAt, sess.LastSeenAt = id, created, seen
	return nil
}

// SessionByTokenHash returns revoked and expired sessions too, joined with
// the user's active flag: it is the lookup every proxied request makes. The
// hash is left out of errors, as it is as good as the cookie to anyone
// holding the key.
func (s *Store) SessionByTokenHash(ctx context.Context, hash []byte) (*store.SessionUser, error) {
	su := &store.SessionUser{}
	err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+`, u.active
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1`, hash), &su.Session, &su.UserActive)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("session by token hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up session by token hash: %w", err)
	}
	return su, nil
}

// TouchSession only moves last_seen_at forward: concurrent requests of one
// session finish in any order, and the oldest must not win. Concurrent
// touches queue on the row lock, and each re-checks the condition against
// the newest row. A missing session is not reported.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	if !storable(id) {
		return nil
	}
	n := at.UnixNano()
	if _, err := s.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1`, n, id); err != nil {
		return fmt.Errorf("touching session %q: %w", id, err)
	}
	return nil
}

// RevokeSession keeps the first revocation time, so revoking twice does not
// move it; a zero at means now.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	if !storable(id) {
		return fmt.Errorf("revoking session %q: %w", id, store.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, at.UnixNano(), id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("revoking session %q: %w", id, err)
	}
	return nil
}

// Sessions lists newest first (by CreatedAt, then most recently inserted).
// With ActiveOnly and a zero Now, now is used.
func (s *Store) Sessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	var w where
	if f.UserID != 0 {
		w.add(`s.user_id = ?`, f.UserID)
	}
	if f.Site != "" {
		if !storable(f.Site) {
			return nil, nil
		}
		w.add(`s.site = ?`, f.Site)
	}
	if f.ActiveOnly {
		now := f.Now
		if now.IsZero() {
			now = time.Now()
		}
		w.add(`s.revoked_at IS NULL AND s.expires_at > ?`, now.UnixNano())
	}
	q := `SELECT ` + sessionColumns + ` FROM sessions s` + w.sql() + ` ORDER BY s.created_at DESC, s.seq DESC`
	q += w.limit(f.Limit)
	return listRows(ctx, s.pool, fmt.Sprintf("sessions %+v", f), q, w.args,
		func(r scanner, sess *store.Session) error { return scanSession(r, sess) })
}
