// Package ops holds latchkey's domain operations: adding and listing users,
// sessions, audit queries, invites, signed links, tickets and the mail
// outbox. The CLI (`caddy latchkey …`), the admin API and the gateway's own
// pages are thin adapters over it, so that all of them say the same thing
// about the same input and answer in the same JSON.
//
// It knows nothing of Caddy: caddymodule reads the config and hands it
// plain values (the store, the secret, the key ring, the sites).
package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// Ops are the operations on one store. The zero values of the optional
// fields turn off what needs them.
type Ops struct {
	Store store.Store
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Secret keys code hashes and session tokens.
	Secret []byte
	// Ring signs links. When nil, LoadRing makes it on first need: the CLI
	// builds it from the config only for the commands that sign, so that a
	// bad key fails those alone.
	Ring     *link.KeyRing
	LoadRing func() (*link.KeyRing, error)
	// TicketHasher hashes ticket passwords; when nil, LoadTicketHasher
	// makes it.
	TicketHasher     *ticket.Hasher
	LoadTicketHasher func() (*ticket.Hasher, error)
	// Mailer sends invites and sign-in links; nil without smtp.
	Mailer Mailer
	// Cache, when the operations run inside the gateway, is told of
	// revocations and deactivations so that they hold at once; nil in the
	// CLI.
	Cache *session.Cache
	// Sites are the config's latchkey sites, one entry per handler.
	Sites []SiteConf
}

// Mailer renders mails and sends or queues them.
type Mailer interface {
	// SendInvite mails an invite's code; window is how long it may be
	// used for, as the mail says.
	SendInvite(ctx context.Context, inv *store.Invite, code, loginURL string, window time.Duration) error
	// SendLoginLink queues a sign-in link mail; ref names the link (its
	// jti) in the outbox.
	SendLoginLink(ctx context.Context, l mail.LoginLink, ref string) error
}

func (o *Ops) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o *Ops) ring() (*link.KeyRing, error) {
	switch {
	case o.Ring != nil:
		return o.Ring, nil
	case o.LoadRing != nil:
		return o.LoadRing()
	}
	return nil, fmt.Errorf("no link keys to sign with")
}

func (o *Ops) hasher() (*ticket.Hasher, error) {
	switch {
	case o.TicketHasher != nil:
		return o.TicketHasher, nil
	case o.LoadTicketHasher != nil:
		return o.LoadTicketHasher()
	}
	return ticket.NewHasher(o.Secret, ticket.DefaultArgon2Params)
}

// CanMail reports whether there is a mail server to send through.
func (o *Ops) CanMail() bool { return o.Mailer != nil }

// InputError is an error about what the caller asked for, not about the
// server: the admin API answers it with 400. It does not unwrap, so that an
// input error is answered 400 whatever its message mentions.
type InputError struct{ Err error }

func (e InputError) Error() string { return e.Err.Error() }

func inputErr(format string, args ...any) error {
	return InputError{fmt.Errorf(format, args...)}
}
