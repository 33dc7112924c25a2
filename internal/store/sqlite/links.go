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

const linkColumns = `jti, user_id, target, mode, max_uses, uses, created_at, created_by,
	expires_at, first_used_at, last_used_at, revoked_at, site`

func scanLink(row interface{ Scan(...any) error }, l *store.Link) error {
	var user, created, expires, firstUsed, lastUsed, revoked sql.NullInt64
	if err := row.Scan(&l.JTI, &user, &l.Target, &l.Mode, &l.MaxUses, &l.Uses, &created, &l.CreatedBy,
		&expires, &firstUsed, &lastUsed, &revoked, &l.Site); err != nil {
		return err
	}
	l.UserID = user.Int64
	l.CreatedAt, l.ExpiresAt = fromNanos(created), fromNanos(expires)
	l.FirstUsedAt, l.LastUsedAt, l.RevokedAt = fromNanos(firstUsed), fromNanos(lastUsed), fromNanos(revoked)
	return nil
}

// nullID binds a user id, 0 (no user) as NULL for the foreign key.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// CreateLink stores l as given, with CreatedAt now if zero (written back
// into l). A JTI that has a row already, a placeholder left by RevokeLink
// included, is store.ErrConflict; a UserID with no user is
// store.ErrNotFound.
func (s *Store) CreateLink(ctx context.Context, l *store.Link) error {
	fail := func(err error) error {
		return fmt.Errorf("creating link %q for user %d: %w", l.JTI, l.UserID, err)
	}
	switch {
	case l.JTI == "":
		return fail(errors.New("empty jti"))
	case l.MaxUses < 0:
		return fail(fmt.Errorf("negative max uses %d", l.MaxUses))
	}
	created := l.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO links
		(jti, user_id, target, mode, max_uses, uses, created_at, created_by,
		 expires_at, first_used_at, last_used_at, revoked_at, site)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		l.JTI, nullID(l.UserID), l.Target, l.Mode, l.MaxUses, l.Uses, created.UnixNano(), l.CreatedBy,
		nanos(l.ExpiresAt), nanos(l.FirstUsedAt), nanos(l.LastUsedAt), nanos(l.RevokedAt), l.Site)
	switch {
	case isUniqueViolation(err):
		return fail(fmt.Errorf("jti taken: %w", store.ErrConflict))
	case isForeignKeyViolation(err):
		return fail(fmt.Errorf("user %d: %w", l.UserID, store.ErrNotFound))
	case err != nil:
		return fail(err)
	}
	l.CreatedAt = created
	return nil
}

func (s *Store) Link(ctx context.Context, jti string) (*store.Link, error) {
	var l store.Link
	err := scanLink(s.linkByJTI.QueryRowContext(ctx, jti), &l)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("link %q: %w", jti, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading link %q: %w", jti, err)
	}
	return &l, nil
}

// Links lists newest first (by CreatedAt, then most recently inserted); a
// zero Limit means no limit.
func (s *Store) Links(ctx context.Context, f store.LinkFilter) ([]store.Link, error) {
	var q strings.Builder
	var args []any
	q.WriteString(`SELECT ` + linkColumns + ` FROM links WHERE 1`)
	if f.UserID != 0 {
		q.WriteString(` AND user_id = ?`)
		args = append(args, f.UserID)
	}
	q.WriteString(` ORDER BY created_at DESC, rowid DESC`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	return listRows(ctx, s.r, fmt.Sprintf("links %+v", f), q.String(), args, scanLink)
}

// RevokeLink is one upsert: an existing row keeps its first revocation
// time, and a JTI with no row gets a placeholder that is revoked from the
// start (created at at, by "revoked", max_uses 1, no user, no expiry), so
// that UseLink's insert finds it and its update refuses the use. A zero at
// means now.
func (s *Store) RevokeLink(ctx context.Context, jti string, at time.Time) error {
	if jti == "" {
		return errors.New("revoking link: empty jti")
	}
	if at.IsZero() {
		at = time.Now()
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := s.txExec(ctx, tx, `INSERT INTO links (jti, max_uses, created_at, created_by, revoked_at)
			VALUES (?, 1, ?, 'revoked', ?)
			ON CONFLICT (jti) DO UPDATE SET revoked_at = coalesce(revoked_at, excluded.revoked_at)`,
			jti, at.UnixNano(), at.UnixNano()); err != nil {
			return err
		}
		// The sessions the link started (login mode) end with it.
		_, err := s.txExec(ctx, tx, `UPDATE sessions SET revoked_at = ? WHERE kind = 'link' AND credential_id = ? AND revoked_at IS NULL`,
			at.UnixNano(), jti)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoking link %q: %w", jti, err)
	}
	return nil
}

// RevokeUserLinks sets the user's links_revoked_before to at (later calls
// overwrite it, whether earlier or later) and revokes at at whichever of the
// user's rows are not revoked yet; rows revoked before keep their time. A
// zero at means now.
func (s *Store) RevokeUserLinks(ctx context.Context, userID int64, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE users SET links_revoked_before = ? WHERE id = ?`, at.UnixNano(), userID)
		if err := oneRow(res, err); err != nil {
			return err
		}
		if _, err := s.txExec(ctx, tx, `UPDATE links SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`,
			at.UnixNano(), userID); err != nil {
			return err
		}
		_, err = s.txExec(ctx, tx, `UPDATE sessions SET revoked_at = ? WHERE kind = 'link' AND user_id = ? AND revoked_at IS NULL`,
			at.UnixNano(), userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoking links of user %d: %w", userID, err)
	}
	return nil
}

// UseLink runs in one transaction on the writer, like RedeemInvite. The
// row of a link minted offline is created from u (created at u.At, by
// "offline"); an existing row, one the CLI created or an earlier use or a
// revocation left, is kept as it is, so its max_uses and revocation are the
// ones that count. The use is then one conditional UPDATE, which SQLite's
// single writer makes the only one running, so that concurrent uses cannot
// together exceed max_uses. The row's expiry is not checked here: the
// caller has checked the token's.
//
// Only that UPDATE reports store.ErrConflict; as for RedeemInvite, a taken
// session ID or token hash is an error that is not ErrConflict. Either way
// nothing is written, the row of an offline link included.
//
// The session is written as given; the audit record takes u.UserID if its
// UserID is zero and the session's ID if its SessionID is empty, and a zero
// Time is stored as u.At. Both are written back (with the session's
// defaults and the record's ID) only once the transaction commits. A zero
// u.At means now.
func (s *Store) UseLink(ctx context.Context, u *store.LinkUse) (int, error) {
	fail := func(err error) error {
		return fmt.Errorf("using link %q: %w", u.JTI, err)
	}
	switch {
	case u.JTI == "":
		return 0, fail(errors.New("empty jti"))
	case u.MaxUses < 0:
		return 0, fail(fmt.Errorf("negative max uses %d", u.MaxUses))
	}
	at := u.At
	if at.IsZero() {
		at = time.Now()
	}
	var (
		uses  int
		sess  store.Session
		event store.AuditEvent
	)
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO links
			(jti, user_id, target, mode, max_uses, uses, created_at, created_by, expires_at, site)
			VALUES (?, ?, ?, ?, ?, 0, ?, 'offline', ?, ?)
			ON CONFLICT (jti) DO NOTHING`,
			u.JTI, nullID(u.UserID), u.Target, u.Mode, u.MaxUses, at.UnixNano(), nanos(u.ExpiresAt), u.Site)
		switch {
		case isForeignKeyViolation(err):
			return fmt.Errorf("recording link: user %d: %w", u.UserID, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("recording link: %w", err)
		}
		err = s.txQueryRow(ctx, tx, `UPDATE links
			SET uses = uses + 1, first_used_at = coalesce(first_used_at, ?), last_used_at = ?
			WHERE jti = ? AND revoked_at IS NULL AND (max_uses = 0 OR uses < max_uses)
				AND site = ?
			RETURNING uses`,
			at.UnixNano(), at.UnixNano(), u.JTI, u.Site).Scan(&uses)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("used up, revoked or of another site: %w", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("recording use: %w", err)
		}

		if u.Session != nil {
			sess = *u.Session
			if err := insertSession(ctx, tx, &sess); err != nil {
				if errors.Is(err, store.ErrConflict) {
					// Not the caller's ErrConflict: see above.
					return fmt.Errorf("creating session %q for user %d: session ID or token hash already taken", sess.ID, sess.UserID)
				}
				return err
			}
			// A magic link is a way in like an invite code: it counts as a
			// login, in the same transaction.
			if err := recordLogin(ctx, tx, sess.UserID, at, sess.IP); err != nil {
				return err
			}
		}
		if u.Audit != nil {
			event = *u.Audit
			if event.UserID == 0 {
				event.UserID = u.UserID
			}
			if event.SessionID == "" && u.Session != nil {
				event.SessionID = sess.ID
			}
			if err := s.insertAuditTx(ctx, tx, &event, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fail(err)
	}
	if u.Session != nil {
		*u.Session = sess
	}
	if u.Audit != nil {
		*u.Audit = event
	}
	return uses, nil
}
