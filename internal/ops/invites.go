package ops

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// NewInvite is the input for creating an invite.
type NewInvite struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
	// Domain names the site (PickSite); the CLI and the admin API read it,
	// CreateInvite itself takes the site it was given.
	Domain string `json:"domain,omitempty"`
	// LoginURL is where the invitee enters the code; default the site's
	// login page on its origin.
	LoginURL string `json:"login_url,omitempty"`
	Send     bool   `json:"send,omitempty"`
}

// CreateInvite makes an invite to s, and sends it when asked. A failed send
// keeps the invite and is reported in the result (Sent false, SendError),
// not as an error, so that the code can still be handed over. It grants no
// roles. by records who made it ("cli", "admin-api", "user:<id>").
func (o *Ops) CreateInvite(ctx context.Context, s SiteConf, in NewInvite, by string) (InviteJSON, error) {
	email, ok := mail.NormalizeAddress(in.Email)
	if !ok {
		return InviteJSON{}, inputErr("creating invite: %q is not an email address", in.Email)
	}
	if in.Send && o.Mailer == nil {
		return InviteJSON{}, inputErr("cannot send: no smtp server in the latchkey global option (use --no-send to print the code)")
	}
	loginURL := in.LoginURL
	if loginURL == "" {
		// From the site's configured origin, never from a request.
		loginURL, _ = s.LoginURL()
	}
	if in.Send && loginURL == "" {
		return InviteJSON{}, inputErr("cannot send: site %q has no origin to make its login URL from (set origin in its latchkey handler, or use --no-send)", s.Site.Name)
	}
	svc := invite.NewService(o.Store, o.Secret, s.inviteRules(), o.now)
	inv := &store.Invite{
		Site: s.Site.Name, Email: email, Name: strings.TrimSpace(in.Name),
		Phone: strings.TrimSpace(in.Phone), CreatedBy: by,
	}
	code, err := svc.Create(ctx, inv, s.inviteLength())
	if err != nil {
		return InviteJSON{}, err
	}
	out := o.ToInviteJSON(inv)
	out.Code = code
	out.LoginURL = loginURL
	if in.Send {
		sent := true
		if err := o.Mailer.SendInvite(ctx, inv, code, out.LoginURL, svc.Rules().UsageWindow); err != nil {
			sent = false
			out.SendError = err.Error()
		}
		out.Sent = &sent
		if sent {
			out.SentAt = At(o.now())
		}
	}
	return out, nil
}

// SendInvite mails an existing invite again, with a new code (only a hash of
// the old one is kept, and it stops working).
func (o *Ops) SendInvite(ctx context.Context, ref string) (InviteJSON, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(ref), 10, 64)
	if err != nil {
		return InviteJSON{}, inputErr("invite id %q is not a number", ref)
	}
	if o.Mailer == nil {
		return InviteJSON{}, inputErr("cannot send: no smtp server in the latchkey global option")
	}
	inv, err := o.Store.Invite(ctx, id)
	if err != nil {
		return InviteJSON{}, fmt.Errorf("invite %d: %w", id, err)
	}
	if !inv.RevokedAt.IsZero() {
		return InviteJSON{}, inputErr("invite %d is revoked", id)
	}
	s, err := pickSite(o.Sites, inv.Site)
	if err != nil {
		return InviteJSON{}, err
	}
	loginURL, err := s.LoginURL()
	if err != nil {
		return InviteJSON{}, inputErr("cannot send invite %d: %v", id, err)
	}
	svc := invite.NewService(o.Store, o.Secret, s.inviteRules(), o.now)
	code, err := svc.NewCode(ctx, inv, s.inviteLength())
	if err != nil {
		return InviteJSON{}, err
	}
	out := o.ToInviteJSON(inv)
	out.LoginURL = loginURL
	sent := true
	if err := o.Mailer.SendInvite(ctx, inv, code, out.LoginURL, svc.Rules().UsageWindow); err != nil {
		sent = false
		out.SendError = err.Error()
		// The mail did not go: the new code is the only way in, so show it.
		out.Code = code
	} else {
		out.SentAt, out.SendError = At(inv.SentAt), ""
	}
	out.Sent = &sent
	return out, nil
}

// Invites lists the invites to a site (every site's with ""), newest first.
func (o *Ops) Invites(ctx context.Context, domain string) ([]store.Invite, error) {
	return o.Store.Invites(ctx, store.InviteFilter{Site: invite.SiteOf(domain)})
}

// RevokeInvite revokes an invite and ends the sessions it started.
func (o *Ops) RevokeInvite(ctx context.Context, ref string) (Revoked, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(ref), 10, 64)
	if err != nil {
		return Revoked{}, inputErr("invite id %q is not a number", ref)
	}
	if err := o.Store.RevokeInvite(ctx, id, o.now()); err != nil {
		return Revoked{}, fmt.Errorf("revoking invite %d: %w", id, err)
	}
	inv, err := o.Store.Invite(ctx, id)
	if err != nil {
		return Revoked{}, err
	}
	// Its sessions were revoked with it; drop them from this process's cache.
	if inv.UserID != 0 {
		o.Cache.ForgetUser(inv.UserID)
	}
	return revoked("invite", ref, 1, "revoked invite %d (%s)", inv.ID, inv.Email), nil
}
