package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const inviteColumns = `id, site, email, name, phone, code_hash, created_at, created_by,
	user_id, first_used_at, last_used_at, use_count, revoked_at, sent_at, send_error`

func scanInvite(row interface{ Scan(...any) error }, inv *store.Invite) error {
	var created, firstUsed, lastUsed, revoked, sent sql.NullInt64
	var user sql.NullInt64
	if err := row.Scan(&inv.ID, &inv.Site, &inv.Email, &inv.Name, &inv.Phone, &inv.CodeHash, &created, &inv.CreatedBy,
		&user, &firstUsed, &lastUsed, &inv.UseCount, &revoked, &sent, &inv.SendError); err != nil {
		return err
	}
	inv.UserID = user.Int64
	inv.CreatedAt, inv.FirstUsedAt, inv.LastUsedAt = fromNanos(created), fromNanos(firstUsed), fromNanos(lastUsed)
	inv.RevokedAt, inv.SentAt = fromNanos(revoked), fromNanos(sent)
	return nil
}

// after binds the lower bound of a "column > bound" condition: the zero
// time is before every time, which NULL (what nanos gives it) is not.
func after(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// CreateInvite stores the e-mail address as CreateUser does and writes that
// form back into inv along with ID and CreatedAt (now if zero). The other
// fields are stored as given, so that an invite can be created in any
// state; the code hash is required.
func (s *Store) CreateInvite(ctx context.Context, inv *store.Invite) error {
	email := normEmail(inv.Email)
	fail := func(err error) error {
		return fmt.Errorf("creating invite for %q on site %q: %w", email, inv.Site, err)
	}
	switch {
	case email == "":
		return fail(errors.New("empty e-mail address"))
	case len(inv.CodeHash) == 0:
		return fail(errors.New("no code hash"))
	}
	created := inv.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	var user any
	if inv.UserID != 0 {
		user = inv.UserID
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO invites
		(site, email, name, phone, code_hash, created_at, created_by, user_id,
		 first_used_at, last_used_at, use_count, revoked_at, sent_at, send_error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.Site, email, inv.Name, inv.Phone, inv.CodeHash, created.UnixNano(), inv.CreatedBy, user,
		nanos(inv.FirstUsedAt), nanos(inv.LastUsedAt), inv.UseCount, nanos(inv.RevokedAt), nanos(inv.SentAt), inv.SendError)
	switch {
	case isUniqueViolation(err):
		return fail(fmt.Errorf("code hash taken: %w", store.ErrConflict))
	case isForeignKeyViolation(err):
		return fail(fmt.Errorf("user %d: %w", inv.UserID, store.ErrNotFound))
	case err != nil:
		return fail(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fail(err)
	}
	inv.ID, inv.Email, inv.CreatedAt = id, email, created
	return nil
}

func (s *Store) Invite(ctx context.Context, id int64) (*store.Invite, error) {
	var inv store.Invite
	err := scanInvite(s.r.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites WHERE id = ?`, id), &inv)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("invite %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading invite %d: %w", id, err)
	}
	return &inv, nil
}

// InviteByCodeHash leaves the hash out of errors, as SessionByTokenHash
// does.
func (s *Store) InviteByCodeHash(ctx context.Context, hash []byte) (*store.Invite, error) {
	var inv store.Invite
	err := scanInvite(s.r.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites WHERE code_hash = ?`, hash), &inv)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("invite by code hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up invite by code hash: %w", err)
	}
	return &inv, nil
}

// Invites lists newest first; a zero Limit means no limit.
func (s *Store) Invites(ctx context.Context, f store.InviteFilter) ([]store.Invite, error) {
	var q strings.Builder
	var args []any
	q.WriteString(`SELECT ` + inviteColumns + ` FROM invites WHERE 1`)
	if f.Site != "" {
		q.WriteString(` AND site = ?`)
		args = append(args, f.Site)
	}
	q.WriteString(` ORDER BY created_at DESC, id DESC`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	return listRows(ctx, s.r, fmt.Sprintf("invites %+v", f), q.String(), args, scanInvite)
}

// RevokeInvite keeps the invite's first revocation time if called again,
// and revokes at at whichever of its sessions are not revoked yet (any
// started after an earlier revocation included). A zero at means now.
func (s *Store) RevokeInvite(ctx context.Context, id int64, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `UPDATE invites SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, at.UnixNano(), id)
		if err := oneRow(res, err); err != nil {
			return err
		}
		_, err = s.txExec(ctx, tx, `UPDATE sessions SET revoked_at = ?
			WHERE kind = 'invite' AND credential_id = ? AND revoked_at IS NULL`,
			at.UnixNano(), strconv.FormatInt(id, 10))
		return err
	})
	if err != nil {
		return fmt.Errorf("revoking invite %d: %w", id, err)
	}
	return nil
}

// SetInviteSent sets SentAt and clears SendError after a success, and
// only sets SendError after a failure, so SentAt stays the last success.
// A zero at means now.
func (s *Store) SetInviteSent(ctx context.Context, id int64, at time.Time, sendErr string) error {
	var res sql.Result
	var err error
	if sendErr == "" {
		if at.IsZero() {
			at = time.Now()
		}
		res, err = s.w.ExecContext(ctx, `UPDATE invites SET sent_at = ?, send_error = '' WHERE id = ?`, at.UnixNano(), id)
	} else {
		res, err = s.w.ExecContext(ctx, `UPDATE invites SET send_error = ? WHERE id = ?`, sendErr, id)
	}
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("recording delivery of invite %d: %w", id, err)
	}
	return nil
}

// ReplaceInviteCode gives an unrevoked invite a new code; the old one stops
// working at once, because only one hash is kept.
func (s *Store) ReplaceInviteCode(ctx context.Context, id int64, hash []byte) error {
	if len(hash) == 0 {
		return fmt.Errorf("replacing code of invite %d: empty code hash", id)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE invites SET code_hash = ? WHERE id = ? AND revoked_at IS NULL`, hash, id)
	if isUniqueViolation(err) {
		return fmt.Errorf("replacing code of invite %d: %w", id, store.ErrConflict)
	}
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("replacing code of invite %d (missing or revoked): %w", id, err)
	}
	return nil
}

// RedeemInvite runs in one transaction on the writer, which SQLite's
// BEGIN IMMEDIATE makes the only writer of the file while it runs. The use
// is decided by one conditional UPDATE; everything after it only runs if
// that matched the invite.
//
// On a first use the new user takes site and e-mail address from the
// invite, so that it is the user the lookup by those would have found, and
// the rest (name, phone, roles, CreatedAt) from r.NewUser, or from the
// invite when NewUser is nil. It is created active: it is about to be
// logged in. Its login fields start empty and are set by the login.
//
// Only the conditional UPDATE reports store.ErrConflict. A session ID or
// token hash that is taken fails the whole redemption with an error that
// is not ErrConflict, since the caller reads ErrConflict as "re-read the
// invite and decide again", which would not help.
//
// Session and Audit are written back (UserID, SessionID, the session's
// defaults and the audit event's ID) only once the transaction commits.
func (s *Store) RedeemInvite(ctx context.Context, r *store.Redemption) (*store.User, error) {
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	var (
		user  store.User
		sess  store.Session
		event store.AuditEvent
	)
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var uid int64
		if r.First {
			var site, email, name, phone string
			err := s.txQueryRow(ctx, tx, `UPDATE invites SET first_used_at = ?, last_used_at = ?, use_count = 1
				WHERE id = ? AND revoked_at IS NULL AND first_used_at IS NULL AND created_at > ?
				RETURNING site, email, name, phone`,
				at.UnixNano(), at.UnixNano(), r.InviteID, after(r.CreatedAfter)).Scan(&site, &email, &name, &phone)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("first use: %w", store.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("recording first use: %w", err)
			}
			err = s.txQueryRow(ctx, tx, `SELECT id FROM users WHERE site = ? AND email = ?`, site, email).Scan(&uid)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				nu := store.User{Name: name, Phone: phone, CreatedAt: at}
				if r.NewUser != nil {
					nu = *r.NewUser
					if nu.CreatedAt.IsZero() {
						nu.CreatedAt = at
					}
				}
				nu.Site, nu.Email, nu.Active = site, email, true
				nu.CurrentLoginAt, nu.CurrentLoginIP, nu.LastLoginAt, nu.LastLoginIP, nu.LoginCount = time.Time{}, "", time.Time{}, "", 0
				nu.LinksRevokedBefore = time.Time{}
				if err := insertUser(ctx, tx, &nu); err != nil {
					return err
				}
				uid = nu.ID
			case err != nil:
				return fmt.Errorf("looking up user %q on site %q: %w", email, site, err)
			case r.NewUserOnly:
				return fmt.Errorf("user %q on site %q: %w", email, site, store.ErrUserExists)
			}
			if _, err := s.txExec(ctx, tx, `UPDATE invites SET user_id = ? WHERE id = ?`, uid, r.InviteID); err != nil {
				return fmt.Errorf("linking user %d: %w", uid, err)
			}
		} else {
			var u sql.NullInt64
			err := s.txQueryRow(ctx, tx, `UPDATE invites SET use_count = use_count + 1, last_used_at = ?
				WHERE id = ? AND revoked_at IS NULL AND first_used_at IS NOT NULL AND first_used_at > ?
				RETURNING user_id`,
				at.UnixNano(), r.InviteID, after(r.FirstUsedAfter)).Scan(&u)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("later use: %w", store.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("recording use: %w", err)
			}
			if !u.Valid {
				return errors.New("used invite has no user")
			}
			uid = u.Int64
		}

		if err := recordLogin(ctx, tx, uid, at, r.IP); err != nil {
			return err
		}
		if r.Session != nil {
			sess = *r.Session
			sess.UserID = uid
			if err := insertSession(ctx, tx, &sess); err != nil {
				if errors.Is(err, store.ErrConflict) {
					// Not the caller's ErrConflict: see above.
					return fmt.Errorf("creating session %q for user %d: session ID or token hash already taken", sess.ID, uid)
				}
				return err
			}
		}
		if r.Audit != nil {
			event = *r.Audit
			event.UserID = uid
			if r.Session != nil {
				event.SessionID = sess.ID
			}
			if err := s.insertAuditTx(ctx, tx, &event, at); err != nil {
				return err
			}
		}
		if err := scanUser(s.txQueryRow(ctx, tx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, uid), &user); err != nil {
			return fmt.Errorf("reading user %d: %w", uid, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redeeming invite %d: %w", r.InviteID, err)
	}
	if r.Session != nil {
		*r.Session = sess
	}
	if r.Audit != nil {
		*r.Audit = event
	}
	return &user, nil
}
