package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const inviteColumns = `id, site, email, name, phone, code_hash, created_at, created_by,
	user_id, first_used_at, last_used_at, use_count, revoked_at, sent_at, send_error`

func scanInvite(row scanner, inv *store.Invite) error {
	var created, firstUsed, lastUsed, revoked, sent, user *int64
	if err := row.Scan(&inv.ID, &inv.Site, &inv.Email, &inv.Name, &inv.Phone, &inv.CodeHash, &created, &inv.CreatedBy,
		&user, &firstUsed, &lastUsed, &inv.UseCount, &revoked, &sent, &inv.SendError); err != nil {
		return err
	}
	inv.UserID = 0
	if user != nil {
		inv.UserID = *user
	}
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
	case !storable(email) || !storable(inv.Site):
		return fail(errors.New("site or e-mail address is not valid UTF-8"))
	}
	created := inv.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO invites
		(site, email, name, phone, code_hash, created_at, created_by, user_id,
		 first_used_at, last_used_at, use_count, revoked_at, sent_at, send_error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		RETURNING id`,
		inv.Site, email, text(inv.Name), text(inv.Phone), inv.CodeHash, created.UnixNano(), text(inv.CreatedBy), nullID(inv.UserID),
		nanos(inv.FirstUsedAt), nanos(inv.LastUsedAt), inv.UseCount, nanos(inv.RevokedAt), nanos(inv.SentAt), text(inv.SendError)).Scan(&id)
	switch {
	case isUniqueViolation(err):
		return fail(fmt.Errorf("code hash taken: %w", store.ErrConflict))
	case isForeignKeyViolation(err):
		return fail(fmt.Errorf("user %d: %w", inv.UserID, store.ErrNotFound))
	case err != nil:
		return fail(err)
	}
	inv.ID, inv.Email, inv.CreatedAt = id, email, created
	return nil
}

func (s *Store) Invite(ctx context.Context, id int64) (*store.Invite, error) {
	var inv store.Invite
	err := scanInvite(s.pool.QueryRow(ctx, `SELECT `+inviteColumns+` FROM invites WHERE id = $1`, id), &inv)
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := scanInvite(s.pool.QueryRow(ctx, `SELECT `+inviteColumns+` FROM invites WHERE code_hash = $1`, hash), &inv)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("invite by code hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up invite by code hash: %w", err)
	}
	return &inv, nil
}

// Invites lists newest first (by CreatedAt, then ID); a zero Limit means no
// limit.
func (s *Store) Invites(ctx context.Context, f store.InviteFilter) ([]store.Invite, error) {
	var w where
	if f.Site != "" {
		if !storable(f.Site) {
			return nil, nil
		}
		w.add(`site = ?`, f.Site)
	}
	q := `SELECT ` + inviteColumns + ` FROM invites` + w.sql() + ` ORDER BY created_at DESC, id DESC` + w.limit(f.Limit)
	return listRows(ctx, s.pool, fmt.Sprintf("invites %+v", f), q, w.args, scanInvite)
}

// RevokeInvite keeps the invite's first revocation time if called again,
// and revokes at at whichever of its sessions are not revoked yet, in the
// same transaction. A zero at means now.
func (s *Store) RevokeInvite(ctx context.Context, id int64, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE invites SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`, at.UnixNano(), id)
		if err := oneRow(tag, err); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sessions SET revoked_at = $1
			WHERE kind = 'invite' AND credential_id = $2 AND revoked_at IS NULL`,
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
	var err error
	if sendErr == "" {
		if at.IsZero() {
			at = time.Now()
		}
		err = oneRow(s.pool.Exec(ctx, `UPDATE invites SET sent_at = $1, send_error = '' WHERE id = $2`, at.UnixNano(), id))
	} else {
		err = oneRow(s.pool.Exec(ctx, `UPDATE invites SET send_error = $1 WHERE id = $2`, text(sendErr), id))
	}
	if err != nil {
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
	tag, err := s.pool.Exec(ctx, `UPDATE invites SET code_hash = $1 WHERE id = $2 AND revoked_at IS NULL`, hash, id)
	if isUniqueViolation(err) {
		return fmt.Errorf("replacing code of invite %d: %w", id, store.ErrConflict)
	}
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("replacing code of invite %d (missing or revoked): %w", id, err)
	}
	return nil
}

// RedeemInvite runs in one transaction. The use is decided by one
// conditional UPDATE: of concurrent uses, the others wait for the first's
// row lock and, once it commits, find the condition no longer holds (a
// first use) or count on from the first's (a later use). Everything after
// it only runs if it matched the invite.
//
// On a first use the new user takes site and e-mail address from the
// invite, and the rest (name, phone, roles, CreatedAt) from r.NewUser, or
// from the invite when NewUser is nil; it is created active, with empty
// login fields, which the login then sets. If a user with that site and
// address exists it is linked instead, including one another invite's
// first use creates at the same moment (the insert waits for it and then
// finds it).
//
// Only the conditional UPDATE reports store.ErrConflict. A session ID or
// token hash that is taken fails the whole redemption with an error that
// is not ErrConflict. Session and Audit are written back only once the
// transaction commits.
func (s *Store) RedeemInvite(ctx context.Context, r *store.Redemption) (*store.User, error) {
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	var (
		user  *store.User
		sess  store.Session
		event store.AuditEvent
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var uid int64
		if r.First {
			var site, email, name, phone string
			err := tx.QueryRow(ctx, `UPDATE invites SET first_used_at = $1, last_used_at = $1, use_count = 1
				WHERE id = $2 AND revoked_at IS NULL AND first_used_at IS NULL AND created_at > $3
				RETURNING site, email, name, phone`,
				at.UnixNano(), r.InviteID, after(r.CreatedAfter)).Scan(&site, &email, &name, &phone)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("first use: %w", store.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("recording first use: %w", err)
			}
			if uid, err = findOrCreateUser(ctx, tx, r, at, site, email, name, phone); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE invites SET user_id = $1 WHERE id = $2`, uid, r.InviteID); err != nil {
				return fmt.Errorf("linking user %d: %w", uid, err)
			}
		} else {
			var u *int64
			err := tx.QueryRow(ctx, `UPDATE invites SET use_count = use_count + 1, last_used_at = $1
				WHERE id = $2 AND revoked_at IS NULL AND first_used_at IS NOT NULL AND first_used_at > $3
				RETURNING user_id`,
				at.UnixNano(), r.InviteID, after(r.FirstUsedAfter)).Scan(&u)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("later use: %w", store.ErrConflict)
			}
			if err != nil {
				return fmt.Errorf("recording use: %w", err)
			}
			if u == nil {
				return errors.New("used invite has no user")
			}
			uid = *u
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
			if err := insertAudit(ctx, tx, &event, at); err != nil {
				return err
			}
		}
		var err error
		user, err = s.user(ctx, tx, uid)
		return err
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
	return user, nil
}

// findOrCreateUser returns the id of the user with site and email, creating
// it for r's first use if there is none. The insert does nothing if a
// concurrent transaction creates the user first (it waits for that one to
// commit), and the lookup after it, a new snapshot, then finds it.
func findOrCreateUser(ctx context.Context, tx pgx.Tx, r *store.Redemption, at time.Time, site, email, name, phone string) (int64, error) {
	lookup := func() (int64, error) {
		var uid int64
		err := tx.QueryRow(ctx, `SELECT id FROM users WHERE site = $1 AND email = $2`, site, email).Scan(&uid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("looking up user %q on site %q: %w", email, site, err)
		}
		return uid, nil
	}
	if uid, err := lookup(); err != nil || uid != 0 {
		if err == nil && r.NewUserOnly {
			return 0, fmt.Errorf("user %q on site %q: %w", email, site, store.ErrUserExists)
		}
		return uid, err
	}
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
	created, err := insertUser(ctx, tx, &nu, true)
	if err != nil {
		return 0, err
	}
	if created {
		return nu.ID, nil
	}
	if r.NewUserOnly {
		return 0, fmt.Errorf("user %q on site %q: %w", email, site, store.ErrUserExists)
	}
	uid, err := lookup()
	if err == nil && uid == 0 {
		err = fmt.Errorf("user %q on site %q exists but cannot be read", email, site)
	}
	return uid, err
}
