package ops

import (
	"context"
	"errors"
	"fmt"
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
func (o *Ops) RevokeSession(ctx context.Context, id string) error {
	err := o.Store.RevokeSession(ctx, id, o.now())
	o.Cache.ForgetSession(id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("session %q: %w", id, store.ErrNotFound)
	}
	return err
}

// StartSession starts a session for a user, for testing and support, and
// returns its cookie value. A zero lifetime is the session default; via
// says what started it (the session's user agent).
func (o *Ops) StartSession(ctx context.Context, user string, lifetime time.Duration, via string) (token string, s *store.Session, u *store.User, err error) {
	if u, err = o.ResolveUser(ctx, user, ""); err != nil {
		return "", nil, nil, err
	}
	var cfg session.Config
	if lifetime > 0 {
		cfg.Lifetime = lifetime
	}
	token, s, err = session.New(o.Store, o.Secret, cfg, nil, o.now).Start(ctx, u.ID, "cli", "", "", via)
	if err != nil {
		return "", nil, nil, err
	}
	return token, s, u, nil
}
