package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// normEmail is applied on the way in and on lookup, so that "Ann@X.org "
// and "ann@x.org" are one user and UNIQUE(site, email) can enforce it.
func normEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// userColumns fetches the roles in the same statement, as two arrays in the
// same order, so that a user and its roles come from one snapshot without
// a transaction.
const userColumns = `u.id, u.site, u.email, u.name, u.phone, u.active, u.created_at,
	u.current_login_at, u.current_login_ip, u.last_login_at, u.last_login_ip, u.login_count,
	u.links_revoked_before, u.password_hash,
	ARRAY(SELECT r.site FROM user_roles r WHERE r.user_id = u.id ORDER BY r.site, r.role),
	ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.id ORDER BY r.site, r.role)`

func scanUser(row scanner, u *store.User) error {
	var created, cur, last, linksBefore *int64
	var sites, names []string
	if err := row.Scan(&u.ID, &u.Site, &u.Email, &u.Name, &u.Phone, &u.Active, &created,
		&cur, &u.CurrentLoginIP, &last, &u.LastLoginIP, &u.LoginCount, &linksBefore, &u.PasswordHash, &sites, &names); err != nil {
		return err
	}
	u.CreatedAt, u.CurrentLoginAt, u.LastLoginAt = fromNanos(created), fromNanos(cur), fromNanos(last)
	u.LinksRevokedBefore = fromNanos(linksBefore)
	if len(sites) != len(names) {
		return fmt.Errorf("user %d: %d role sites for %d role names", u.ID, len(sites), len(names))
	}
	u.Roles = nil
	for i := range sites {
		u.Roles = append(u.Roles, store.Role{Site: sites[i], Name: names[i]})
	}
	return nil
}

// CreateUser stores the e-mail address trimmed and lower-cased, and writes
// that form back into u along with the new ID and CreatedAt.
func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	var nu store.User
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		nu = *u
		_, err := insertUser(ctx, tx, &nu, false)
		return err
	})
	if err != nil {
		return err
	}
	u.ID, u.Email, u.CreatedAt = nu.ID, nu.Email, nu.CreatedAt
	return nil
}

// insertUser is CreateUser inside a transaction: it inserts u and its roles
// and writes back ID, the stored Email and CreatedAt (now if zero). A taken
// site and address is store.ErrConflict, unless orExisting: then nothing is
// written and created is false, with u unchanged. Errors name the user.
func insertUser(ctx context.Context, tx pgx.Tx, u *store.User, orExisting bool) (created bool, err error) {
	email := normEmail(u.Email)
	fail := func(err error) error {
		return fmt.Errorf("creating user %q on site %q: %w", email, u.Site, err)
	}
	if email == "" {
		return false, fmt.Errorf("creating user %q on site %q: empty e-mail address", u.Email, u.Site)
	}
	if !storable(email) || !storable(u.Site) {
		return false, fail(errors.New("site or e-mail address is not valid UTF-8"))
	}
	at := u.CreatedAt
	if at.IsZero() {
		at = time.Now()
	}
	q := `INSERT INTO users
		(site, email, name, phone, active, created_at, current_login_at, current_login_ip, last_login_at, last_login_ip, login_count,
		 links_revoked_before, password_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	if orExisting {
		q += ` ON CONFLICT (site, email) DO NOTHING`
	}
	var id int64
	err = tx.QueryRow(ctx, q+` RETURNING id`,
		u.Site, email, text(u.Name), text(u.Phone), u.Active, at.UnixNano(),
		nanos(u.CurrentLoginAt), text(u.CurrentLoginIP), nanos(u.LastLoginAt), text(u.LastLoginIP), u.LoginCount,
		nanos(u.LinksRevokedBefore), text(u.PasswordHash)).Scan(&id)
	switch {
	case orExisting && errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case isUniqueViolation(err):
		return false, fail(store.ErrConflict)
	case err != nil:
		return false, fail(err)
	}
	for _, role := range u.Roles {
		if _, err := tx.Exec(ctx, `INSERT INTO user_roles (user_id, site, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			id, text(role.Site), text(role.Name)); err != nil {
			return false, fail(fmt.Errorf("adding role %s: %w", role, err))
		}
	}
	u.ID, u.Email, u.CreatedAt = id, email, at
	return true, nil
}

func (s *Store) User(ctx context.Context, id int64) (*store.User, error) {
	return s.user(ctx, s.pool, id)
}

func (s *Store) user(ctx context.Context, q querier, id int64) (*store.User, error) {
	var u store.User
	err := scanUser(q.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id), &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("user %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %d: %w", id, err)
	}
	return &u, nil
}

func (s *Store) UserByEmail(ctx context.Context, site, email string) (*store.User, error) {
	norm := normEmail(email)
	if !storable(site) || !storable(norm) {
		return nil, fmt.Errorf("user %q on site %q: %w", email, site, store.ErrNotFound)
	}
	var u store.User
	err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.site = $1 AND u.email = $2`, site, norm), &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("user %q on site %q: %w", email, site, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %q on site %q: %w", email, site, err)
	}
	return &u, nil
}

func (s *Store) Users(ctx context.Context) ([]store.User, error) {
	return listRows(ctx, s.pool, "users", `SELECT `+userColumns+` FROM users u ORDER BY u.id`, nil, scanUser)
}

func (s *Store) SetUserActive(ctx context.Context, id int64, active bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET active = $1 WHERE id = $2`, active, id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("setting user %d active=%t: %w", id, active, err)
	}
	return nil
}

// SetPassword replaces the hash; latchkey_user_change records the change
// when it differs. The hash is left out of errors.
func (s *Store) SetPassword(ctx context.Context, id int64, hash string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, text(hash), id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("setting the password of user %d: %w", id, err)
	}
	return nil
}

// RecordLogin shifts the logins in one statement, so that two logins racing
// cannot both read the same "current" and lose one of them.
func (s *Store) RecordLogin(ctx context.Context, id int64, at time.Time, ip string) error {
	return recordLogin(ctx, s.pool, id, at, ip)
}

// recordLogin is RecordLogin on q, the pool or a transaction; a zero at
// means now.
func recordLogin(ctx context.Context, q querier, id int64, at time.Time, ip string) error {
	if at.IsZero() {
		at = time.Now()
	}
	tag, err := q.Exec(ctx, `UPDATE users SET
			last_login_at = current_login_at, last_login_ip = current_login_ip,
			current_login_at = $1, current_login_ip = $2, login_count = login_count + 1
		WHERE id = $3`, at.UnixNano(), text(ip), id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("recording login of user %d from %q: %w", id, ip, err)
	}
	return nil
}
