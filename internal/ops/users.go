package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// NewUser is the input for adding a user.
type NewUser struct {
	Email string   `json:"email"`
	Name  string   `json:"name,omitempty"`
	Phone string   `json:"phone,omitempty"`
	Site  string   `json:"site,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// AddUser adds an active user. An empty site makes a user known on every
// site, who holds roles per site.
func (o *Ops) AddUser(ctx context.Context, in NewUser) (*store.User, error) {
	email, ok := mail.NormalizeAddress(in.Email)
	if !ok {
		return nil, inputErr("adding user: %q is not an email address", in.Email)
	}
	u := &store.User{
		Site:   strings.ToLower(strings.TrimSpace(in.Site)),
		Email:  email,
		Name:   strings.TrimSpace(in.Name),
		Phone:  strings.TrimSpace(in.Phone),
		Active: true,
	}
	for _, r := range in.Roles {
		role, err := ParseRole(u.Site, r)
		if err != nil {
			return nil, fmt.Errorf("adding user %s: %w", email, err)
		}
		u.Roles = append(u.Roles, role)
	}
	if err := o.ensureRoles(ctx, u.Roles); err != nil {
		return nil, fmt.Errorf("adding user %s: %w", email, err)
	}
	if err := o.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("adding user %s on site %q: %w", u.Email, u.Site, store.ErrConflict)
		}
		return nil, err
	}
	return u, nil
}

// Users lists every user.
func (o *Ops) Users(ctx context.Context) ([]store.User, error) {
	return o.Store.Users(ctx)
}

// RoleString is a role as the CLI shows and takes it: "staff" on the user's
// own site, "staff@site" elsewhere.
func RoleString(u *store.User, r store.Role) string {
	if u.Site != "" && r.Site == u.Site {
		return r.Name
	}
	return r.String()
}

// ParseRole reads "name" (on the user's site) or "name@site".
func ParseRole(userSite, in string) (store.Role, error) {
	name, st, hasSite := strings.Cut(strings.TrimSpace(in), "@")
	if !hasSite {
		st = userSite
	}
	st = strings.ToLower(st)
	switch {
	case !validRole(name):
		return store.Role{}, inputErr("role %q must be lower-case letters, digits, '-' or '_'", name)
	case st == "":
		return store.Role{}, inputErr("role %q: a user known on every site holds roles per site; write %s@<site>", in, name)
	}
	return store.Role{Site: st, Name: name}, nil
}

func validRole(r string) bool {
	if r == "" || len(r) > 64 {
		return false
	}
	for _, c := range r {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ResolveUser finds a user by numeric id or by email. An email that exists
// on several sites needs the site to pick one.
func (o *Ops) ResolveUser(ctx context.Context, ref, site string) (*store.User, error) {
	ref = strings.TrimSpace(ref)
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		u, err := o.Store.User(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("user %d: %w", id, store.ErrNotFound)
		}
		return u, err
	}
	email := strings.ToLower(ref)
	if site != "" {
		u, err := o.Store.UserByEmail(ctx, strings.ToLower(site), email)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("user %q on site %q: %w", ref, site, store.ErrNotFound)
		}
		return u, err
	}
	all, err := o.Store.Users(ctx)
	if err != nil {
		return nil, err
	}
	var found []store.User
	for _, u := range all {
		if u.Email == email {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("user %q: %w", ref, store.ErrNotFound)
	case 1:
		return &found[0], nil
	}
	sites := make([]string, len(found))
	for i, u := range found {
		sites[i] = strconv.Quote(u.Site)
	}
	return nil, inputErr("user %q exists on several sites (%s); name one with --site or use the id", ref, strings.Join(sites, ", "))
}

// SetActive activates or deactivates a user; a deactivated user's sessions
// stop at once.
func (o *Ops) SetActive(ctx context.Context, ref, site string, active bool) (*store.User, error) {
	u, err := o.ResolveUser(ctx, ref, site)
	if err != nil {
		return nil, err
	}
	if err := o.Store.SetUserActive(ctx, u.ID, active); err != nil {
		return nil, err
	}
	o.Cache.ForgetUser(u.ID)
	u.Active = active
	return u, nil
}
