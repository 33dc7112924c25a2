package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// NewRole is the input for creating a role.
type NewRole struct {
	Name        string `json:"name"`
	Site        string `json:"site,omitempty"`
	Description string `json:"description,omitempty"`
}

// RoleJSON is a role of a site.
type RoleJSON struct {
	Site        string `json:"site"`
	Name        string `json:"name"`
	Description string `json:"description"`
	CreatedAt   Time   `json:"created_at"`
	Members     int    `json:"members"`
}

func toRoleJSON(r *store.RoleDef) RoleJSON {
	return RoleJSON{Site: r.Site, Name: r.Name, Description: r.Description, CreatedAt: At(r.CreatedAt), Members: r.Members}
}

// roleSite is the site a role command is about: the one named (by name or
// host), or the config's only site.
func (o *Ops) roleSite(name string) (string, error) {
	if name == "" && len(o.Sites) == 0 {
		return "", inputErr("name the role's site with --site")
	}
	if len(o.Sites) == 0 {
		return strings.ToLower(strings.TrimSpace(name)), nil
	}
	s, err := o.PickSite(name)
	if err != nil {
		return "", err
	}
	return s.Site.Name, nil
}

// CreateRole makes a role on a site, so that it can be granted and
// required.
func (o *Ops) CreateRole(ctx context.Context, in NewRole) (RoleJSON, error) {
	name := strings.TrimSpace(in.Name)
	if !validRole(name) {
		return RoleJSON{}, inputErr("role %q must be lower-case letters, digits, '-' or '_' (at most 64)", in.Name)
	}
	st, err := o.roleSite(in.Site)
	if err != nil {
		return RoleJSON{}, err
	}
	r := &store.RoleDef{Site: st, Name: name, Description: strings.TrimSpace(in.Description), CreatedAt: o.now()}
	if err := o.Store.CreateRole(ctx, r); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return RoleJSON{}, inputErr("role %q exists on site %q", name, st)
		}
		return RoleJSON{}, fmt.Errorf("creating role %q on site %q: %w", name, st, err)
	}
	return toRoleJSON(r), nil
}

// ListRoles lists the roles of a site, or of every site when site is "".
func (o *Ops) ListRoles(ctx context.Context, site string) ([]RoleJSON, error) {
	if site != "" {
		st, err := o.roleSite(site)
		if err != nil {
			return nil, err
		}
		site = st
	}
	defs, err := o.Store.RoleDefs(ctx, site)
	if err != nil {
		return nil, err
	}
	out := make([]RoleJSON, 0, len(defs))
	for i := range defs {
		out = append(out, toRoleJSON(&defs[i]))
	}
	return out, nil
}

// roleOf resolves a user and a role as the CLI takes them ("name" on the
// user's site, "name@site"), checking that the role exists.
func (o *Ops) roleOf(ctx context.Context, user, role, site string) (*store.User, store.Role, error) {
	u, err := o.ResolveUser(ctx, user, site)
	if err != nil {
		return nil, store.Role{}, err
	}
	r, err := ParseRole(u.Site, role)
	if err != nil {
		return nil, store.Role{}, err
	}
	if u.Site != "" && r.Site != u.Site {
		return nil, store.Role{}, inputErr("user %d (%s) belongs to site %q and cannot hold a role on %q", u.ID, u.Email, u.Site, r.Site)
	}
	defs, err := o.Store.RoleDefs(ctx, r.Site)
	if err != nil {
		return nil, store.Role{}, err
	}
	for _, d := range defs {
		if d.Name == r.Name {
			return u, r, nil
		}
	}
	return nil, store.Role{}, inputErr("role %q does not exist on site %q; create it first (caddy latchkey roles create %s --site %s)", r.Name, r.Site, r.Name, r.Site)
}

// AddRole grants a user a role; every gateway sees it from the user's next
// request.
func (o *Ops) AddRole(ctx context.Context, user, role, site string) (string, error) {
	u, r, err := o.roleOf(ctx, user, role, site)
	if err != nil {
		return "", err
	}
	if err := o.Store.GrantRole(ctx, u.ID, r); err != nil {
		return "", fmt.Errorf("granting %s to user %d: %w", r, u.ID, err)
	}
	o.Cache.ForgetUser(u.ID)
	return fmt.Sprintf("user %d (%s) has role %s", u.ID, u.Email, RoleString(u, r)), nil
}

// RemoveRole takes a role from a user.
func (o *Ops) RemoveRole(ctx context.Context, user, role, site string) (Revoked, error) {
	u, err := o.ResolveUser(ctx, user, site)
	if err != nil {
		return Revoked{}, err
	}
	r, err := ParseRole(u.Site, role)
	if err != nil {
		return Revoked{}, err
	}
	if err := o.Store.RevokeRole(ctx, u.ID, r); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Revoked{}, inputErr("user %d (%s) does not hold role %s", u.ID, u.Email, RoleString(u, r))
		}
		return Revoked{}, fmt.Errorf("taking %s from user %d: %w", r, u.ID, err)
	}
	o.Cache.ForgetUser(u.ID)
	return revoked("role", RoleString(u, r), 1, "user %d (%s) no longer has role %s", u.ID, u.Email, RoleString(u, r)), nil
}

// ensureRoles creates the roles a new user is given that do not exist yet:
// `users add --role` predates the role list and keeps working.
func (o *Ops) ensureRoles(ctx context.Context, roles []store.Role) error {
	for _, r := range roles {
		err := o.Store.CreateRole(ctx, &store.RoleDef{Site: r.Site, Name: r.Name, CreatedAt: o.now()})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("creating role %s: %w", r, err)
		}
	}
	return nil
}
