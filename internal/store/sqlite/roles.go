package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// CreateRole adds r to the catalog of its site; a zero CreatedAt is stored
// as now and written back.
func (s *Store) CreateRole(ctx context.Context, r *store.RoleDef) error {
	fail := func(err error) error {
		return fmt.Errorf("creating role %q on site %q: %w", r.Name, r.Site, err)
	}
	if err := checkRole(r.Site, r.Name); err != nil {
		return fail(err)
	}
	created := r.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO roles (site, name, description, created_at) VALUES (?, ?, ?, ?)`,
			r.Site, r.Name, r.Description, created.UnixNano())
		return err
	})
	if isUniqueViolation(err) {
		return fail(store.ErrConflict)
	}
	if err != nil {
		return fail(err)
	}
	r.CreatedAt = created
	return nil
}

// checkRole refuses a role that could never be required: every site a
// gateway serves has a name, and so does every role.
func checkRole(site, name string) error {
	switch {
	case name == "":
		return errors.New("empty role name")
	case site == "":
		return errors.New("empty site")
	}
	return nil
}

// roleDefColumns counts members with the index on user_roles (site, role).
const roleDefColumns = `r.site, r.name, r.description, r.created_at,
	(SELECT count(*) FROM user_roles m WHERE m.site = r.site AND m.role = r.name)`

func scanRoleDef(row interface{ Scan(...any) error }, r *store.RoleDef) error {
	var created sql.NullInt64
	if err := row.Scan(&r.Site, &r.Name, &r.Description, &created, &r.Members); err != nil {
		return err
	}
	r.CreatedAt = fromNanos(created)
	return nil
}

// RoleDefs lists the catalog by site and name, counting members in the same
// statement (one snapshot).
func (s *Store) RoleDefs(ctx context.Context, site string) ([]store.RoleDef, error) {
	if site == "" {
		return listRows(ctx, s.r, "roles of every site", `SELECT `+roleDefColumns+` FROM roles r ORDER BY r.site, r.name`, nil, scanRoleDef)
	}
	return listRows(ctx, s.r, fmt.Sprintf("roles of site %q", site),
		`SELECT `+roleDefColumns+` FROM roles r WHERE r.site = ? ORDER BY r.name`, []any{site}, scanRoleDef)
}

// GrantRole gives the user r; a role held already is left as it is. The
// trigger on user_roles records the change of the user (0012_roles.sql),
// only when a row is inserted.
func (s *Store) GrantRole(ctx context.Context, userID int64, r store.Role) error {
	fail := func(err error) error {
		return fmt.Errorf("granting role %q on site %q to user %d: %w", r.Name, r.Site, userID, err)
	}
	if err := checkRole(r.Site, r.Name); err != nil {
		return fail(err)
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, `INSERT INTO user_roles (user_id, site, role) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			userID, r.Site, r.Name)
		return err
	})
	if isForeignKeyViolation(err) {
		return fail(store.ErrNotFound)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// RevokeRole takes r from the user; the trigger on user_roles records the
// change. A role of the empty site (one 0005_sites.sql could not place) can be
// revoked like any other.
func (s *Store) RevokeRole(ctx context.Context, userID int64, r store.Role) error {
	fail := func(err error) error {
		return fmt.Errorf("revoking role %q on site %q from user %d: %w", r.Name, r.Site, userID, err)
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.txExec(ctx, tx, `DELETE FROM user_roles WHERE user_id = ? AND site = ? AND role = ?`, userID, r.Site, r.Name)
		return oneRow(res, err)
	})
	if errors.Is(err, store.ErrNotFound) {
		return fail(fmt.Errorf("the user does not hold it: %w", err))
	}
	if err != nil {
		return fail(err)
	}
	return nil
}
