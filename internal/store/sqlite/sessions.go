package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const sessionColumns = `s.id, s.user_id, s.token_hash, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at,
	s.ip, s.user_agent, s.kind, s.credential_id, s.site`

// sessionByHashSQL is the lookup every proxied request makes, so it joins
// the user's active flag in rather than costing a second query.
const sessionByHashSQL = `SELECT ` + sessionColumns + `, u.active
	FROM sessions s JOIN users u ON u.id = s.user_id
	WHERE s.token_hash = ?`

// touchSessionSQL only moves last_seen_at forward: concurrent requests of
// one session finish in any order, and the oldest must not win.
const touchSessionSQL = `UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?`

func scanSession(row interface{ Scan(...any) error }, s *store.Session, extra ...any) error {
	var created, seen, expires, revoked sql.NullInt64
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
	return insertSession(ctx, s.w, sess)
}

// insertSession is CreateSession on ex, the writer or a transaction on it.
func insertSession(ctx context.Context, ex execer, sess *store.Session) error {
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
	}
	_, err := ex.ExecContext(ctx, `INSERT INTO sessions
		(id, token_hash, user_id, created_at, last_seen_at, expires_at, revoked_at, ip, user_agent, kind, credential_id, site)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, sess.TokenHash, sess.UserID, created.UnixNano(), seen.UnixNano(), sess.ExpiresAt.UnixNano(),
		nanos(sess.RevokedAt), sess.IP, sess.UserAgent, sess.Kind, sess.CredentialID, sess.Site)
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

// SessionByTokenHash returns revoked and expired sessions too: the caller
// decides, and can tell the user why. The hash is left out of errors, as it
// is as good as the cookie to anyone holding the key.
//
// ctx is checked on entry but not handed to the driver: a lookup by a
// unique index is over in microseconds, and watching ctx during it costs a
// goroutine per statement, which measured to triple the time per request.
func (s *Store) SessionByTokenHash(ctx context.Context, hash []byte) (*store.SessionUser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("looking up session by token hash: %w", err)
	}
	su := &store.SessionUser{}
	err := scanSession(s.sessionByHash.QueryRowContext(context.WithoutCancel(ctx), hash), &su.Session, &su.UserActive)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("session by token hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up session by token hash: %w", err)
	}
	return su, nil
}

// TouchSession does not report a missing session: it runs on every request,
// a miss costs a second query to tell apart from "already newer", and a
// session that vanished is caught by the next lookup anyway. Like the
// lookup, it does not hand ctx to the driver; a busy writer still gives up
// after the busy timeout.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("touching session %q: %w", id, err)
	}
	n := at.UnixNano()
	if _, err := s.touchSession.ExecContext(context.WithoutCancel(ctx), n, id, n); err != nil {
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
	res, err := s.w.ExecContext(ctx, `UPDATE sessions SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, at.UnixNano(), id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("revoking session %q: %w", id, err)
	}
	return nil
}

// Sessions lists newest first. With ActiveOnly and a zero Now, now is used.
func (s *Store) Sessions(ctx context.Context, f store.SessionFilter) ([]store.Session, error) {
	var q strings.Builder
	var args []any
	q.WriteString(`SELECT ` + sessionColumns + ` FROM sessions s WHERE 1`)
	if f.UserID != 0 {
		q.WriteString(` AND s.user_id = ?`)
		args = append(args, f.UserID)
	}
	if f.Site != "" {
		q.WriteString(` AND s.site = ?`)
		args = append(args, f.Site)
	}
	if f.ActiveOnly {
		now := f.Now
		if now.IsZero() {
			now = time.Now()
		}
		q.WriteString(` AND s.revoked_at IS NULL AND s.expires_at > ?`)
		args = append(args, now.UnixNano())
	}
	q.WriteString(` ORDER BY s.created_at DESC, s.rowid DESC`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	return listRows(ctx, s.r, fmt.Sprintf("sessions %+v", f), q.String(), args,
		func(r interface{ Scan(...any) error }, sess *store.Session) error { return scanSession(r, sess) })
}
