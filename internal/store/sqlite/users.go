package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// normEmail is applied on the way in and on lookup, so that "Ann@X.org "
// and "ann@x.org" are one user and UNIQUE(site, email) can enforce it.
func normEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// userColumns fetches the roles in the same statement, as a JSON array, so
// that a user and its roles come from one snapshot without a transaction.
const userColumns = `u.id, u.site, u.email, u.name, u.phone, u.active, u.created_at,
	u.current_login_at, u.current_login_ip, u.last_login_at, u.last_login_ip, u.login_count,
	u.links_revoked_before, u.password_hash,
	(SELECT json_group_array(json_object('Site', site, 'Name', role)) FROM (SELECT site, role FROM user_roles WHERE user_id = u.id ORDER BY site, role))`

func scanUser(row interface{ Scan(...any) error }, u *store.User) error {
	var created, cur, last, linksBefore sql.NullInt64
	var roles string
	if err := row.Scan(&u.ID, &u.Site, &u.Email, &u.Name, &u.Phone, &u.Active, &created,
		&cur, &u.CurrentLoginIP, &last, &u.LastLoginIP, &u.LoginCount, &linksBefore, &u.PasswordHash, &roles); err != nil {
		return err
	}
	u.CreatedAt, u.CurrentLoginAt, u.LastLoginAt = fromNanos(created), fromNanos(cur), fromNanos(last)
	u.LinksRevokedBefore = fromNanos(linksBefore)
	u.Roles = nil
	if roles != "[]" {
		if err := json.Unmarshal([]byte(roles), &u.Roles); err != nil {
			return fmt.Errorf("decoding roles %q: %w", roles, err)
		}
	}
	return nil
}

// CreateUser stores the e-mail address trimmed and lower-cased, and writes
// that form back into u along with the new ID and CreatedAt.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	var nu store.User
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		nu = *u
		return insertUser(ctx, tx, &nu)
	})
	if err != nil {
		return err
	}
	u.ID, u.Email, u.CreatedAt = nu.ID, nu.Email, nu.CreatedAt
	return nil
}

// insertUser is CreateUser inside a transaction: it inserts u and its roles
// and writes back ID, the stored Email and CreatedAt (now if zero). Errors
// name the user; a taken site and address is store.ErrConflict.
func insertUser(ctx context.Context, tx *sql.Tx, u *store.User) error {
	email := normEmail(u.Email)
	fail := func(err error) error {
		return fmt.Errorf("creating user %q on site %q: %w", email, u.Site, err)
	}
	if email == "" {
		return fmt.Errorf("creating user %q on site %q: empty e-mail address", u.Email, u.Site)
	}
	created := u.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO users
		(site, email, name, phone, active, created_at, current_login_at, current_login_ip, last_login_at, last_login_ip, login_count,
		 links_revoked_before, password_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Site, email, u.Name, u.Phone, u.Active, created.UnixNano(),
		nanos(u.CurrentLoginAt), u.CurrentLoginIP, nanos(u.LastLoginAt), u.LastLoginIP, u.LoginCount,
		nanos(u.LinksRevokedBefore), u.PasswordHash)
	if isUniqueViolation(err) {
		return fail(store.ErrConflict)
	}
	if err != nil {
		return fail(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fail(err)
	}
	for _, role := range u.Roles {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO user_roles (user_id, site, role) VALUES (?, ?, ?)`, id, role.Site, role.Name); err != nil {
			return fail(fmt.Errorf("adding role %s: %w", role, err))
		}
	}
	u.ID, u.Email, u.CreatedAt = id, email, created
	return nil
}

func (s *Store) User(ctx context.Context, id int64) (*store.User, error) {
	var u store.User
	err := scanUser(s.userByID.QueryRowContext(ctx, id), &u)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %d: %w", id, err)
	}
	return &u, nil
}

func (s *Store) UserByEmail(ctx context.Context, site, email string) (*store.User, error) {
	var u store.User
	err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.site = ? AND u.email = ?`, site, normEmail(email)), &u)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %q on site %q: %w", email, site, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %q on site %q: %w", email, site, err)
	}
	return &u, nil
}

func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	return listRows(ctx, s.r, "users", `SELECT `+userColumns+` FROM users u ORDER BY u.id`, nil, scanUser)
}

func (s *Store) SetUserActive(ctx context.Context, id int64, active bool) error {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET active = ? WHERE id = ?`, active, id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("setting user %d active=%t: %w", id, active, err)
	}
	return nil
}

// SetPassword replaces the hash; the users_password trigger records the
// change when it differs. The hash is left out of errors.
func (s *Store) SetPassword(ctx context.Context, id int64, hash string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("setting the password of user %d: %w", id, err)
	}
	return nil
}

// RecordLogin shifts the logins in one statement, so that two logins racing
// cannot both read the same "current" and lose one of them.
func (s *Store) RecordLogin(ctx context.Context, id int64, at time.Time, ip string) error {
	return recordLogin(ctx, s.w, id, at, ip)
}

// recordLogin is RecordLogin on ex, the writer or a transaction on it; a
// zero at means now.
func recordLogin(ctx context.Context, ex execer, id int64, at time.Time, ip string) error {
	if at.IsZero() {
		at = time.Now()
	}
	res, err := ex.ExecContext(ctx, `UPDATE users SET
			last_login_at = current_login_at, last_login_ip = current_login_ip,
			current_login_at = ?, current_login_ip = ?, login_count = login_count + 1
		WHERE id = ?`, at.UnixNano(), ip, id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("recording login of user %d from %q: %w", id, ip, err)
	}
	return nil
}

// oneRow turns an UPDATE that matched nothing into store.ErrNotFound.
// SQLite counts rows matched, not rows changed, so an update that sets a
// value it already had still counts.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
