package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// Sessions lists a user's sessions (every user's without one), the active
// ones unless all.
func (o *Ops) Sessions(ctx context.Context, user string, all bool) ([]store.Session, error) {
	f := store.SessionFilter{ActiveOnly: !all, Now: o.now()}
	if user != "" {
		u, err := o.ResolveUser(ctx, user, "")
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	return o.Store.Sessions(ctx, f)
}

// RevokeSession ends a session at once.
func (o *Ops) RevokeSession(ctx context.Context, id string) (Revoked, error) {
	err := o.Store.RevokeSession(ctx, id, o.now())
	o.Cache.ForgetSession(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Revoked{}, fmt.Errorf("session %q: %w", id, store.ErrNotFound)
	case err != nil:
		return Revoked{}, err
	}
	return revoked("session", id, 1, "revoked session %s", id), nil
}

// RevokeUserSessions ends every active session of a user, on every site,
// and says how many it ended. Each is a change of the store's, so every
// gateway drops them within a second.
func (o *Ops) RevokeUserSessions(ctx context.Context, user, site string) (Revoked, error) {
	u, err := o.ResolveUser(ctx, user, site)
	if err != nil {
		return Revoked{}, err
	}
	ss, err := o.Store.Sessions(ctx, store.SessionFilter{UserID: u.ID, ActiveOnly: true, Now: o.now()})
	if err != nil {
		return Revoked{}, err
	}
	n := 0
	for _, s := range ss {
		if err := o.Store.RevokeSession(ctx, s.ID, o.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
			return Revoked{}, fmt.Errorf("ending session %s of user %d after ending %d: %w", s.ID, u.ID, n, err)
		}
		n++
	}
	o.Cache.ForgetUser(u.ID)
	return revoked("sessions", strconv.FormatInt(u.ID, 10), n, "ended %d sessions of user %d (%s)", n, u.ID, u.Email), nil
}

// StartSession starts a session for a user, for testing and support, and
// returns its cookie value. A zero lifetime is the session default; via
// says what started it (the session's user agent).
func (o *Ops) StartSession(ctx context.Context, user, site string, lifetime time.Duration, via string) (token string, s *store.Session, u *store.User, err error) {
	if u, err = o.ResolveUser(ctx, user, ""); err != nil {
		return "", nil, nil, err
	}
	// A session belongs to one site: the one named, else the user's own,
	// else the config's only one.
	switch {
	case site != "":
		sc, err := o.PickSite(site)
		if err != nil {
			return "", nil, nil, err
		}
		site = sc.Site.Name
	case u.Site != "":
		site = u.Site
	default:
		names := map[string]bool{}
		for _, sc := range o.Sites {
			names[sc.Site.Name] = true
		}
		if len(names) != 1 {
			return "", nil, nil, inputErr("user %d (%s) is known on every site: name the site with --site", u.ID, u.Email)
		}
		for n := range names {
			site = n
		}
	}
	if u.Site != "" && u.Site != site {
		return "", nil, nil, inputErr("user %d (%s) belongs to site %q, not %q", u.ID, u.Email, u.Site, site)
	}
	cfg := session.Config{Site: site}
	if lifetime > 0 {
		cfg.Lifetime = lifetime
	}
	token, s, err = session.New(o.Store, o.Secret, cfg, nil, o.now).Start(ctx, u.ID, "cli", "", "", via)
	if err != nil {
		return "", nil, nil, err
	}
	return token, s, u, nil
}
