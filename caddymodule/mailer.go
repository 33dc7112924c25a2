package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// SMTPConfig is the mail server invites are sent through.
type SMTPConfig struct {
	// host:port of the server.
	Addr string `json:"addr"`
	// SMTP AUTH; placeholders such as {env.SMTP_PASSWORD} are expanded.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Sender address, e.g. "Example <noreply@example.com>".
	From string `json:"from"`
	// starttls (default), tls, opportunistic or none.
	TLS                string         `json:"tls,omitempty"`
	InsecureSkipVerify bool           `json:"insecure_skip_verify,omitempty"`
	Timeout            caddy.Duration `json:"timeout,omitempty"`
	// A directory whose files replace the embedded mail templates.
	Templates string `json:"templates,omitempty"`
}

// inviteMailer sends invite mails and records each delivery on the invite.
type inviteMailer struct {
	sender *mail.Sender
	st     store.Store
}

// newMailer returns nil when no smtp server is configured.
func (a *App) newMailer(repl *caddy.Replacer, st store.Store) (*inviteMailer, error) {
	if a.SMTP == nil {
		return nil, nil
	}
	c := a.SMTP
	s, err := mail.New(mail.Config{
		Addr:               repl.ReplaceKnown(c.Addr, ""),
		Username:           repl.ReplaceKnown(c.Username, ""),
		Password:           repl.ReplaceKnown(c.Password, ""),
		From:               repl.ReplaceKnown(c.From, ""),
		TLS:                c.TLS,
		InsecureSkipVerify: c.InsecureSkipVerify,
		Timeout:            time.Duration(c.Timeout),
		TemplatesDir:       repl.ReplaceKnown(c.Templates, ""),
	})
	if err != nil {
		return nil, fmt.Errorf("latchkey smtp: %w", err)
	}
	return &inviteMailer{sender: s, st: st}, nil
}

// SendInvite mails the code and records the outcome on the invite, so that
// `invites list` shows which invites still need sending.
func (m *inviteMailer) SendInvite(ctx context.Context, inv *store.Invite, code, loginURL string, window time.Duration) error {
	sendErr := m.sender.SendInvite(ctx, mail.Invite{
		To: inv.Email, Name: inv.Name, Code: code, LoginURL: loginURL, Site: inv.Site, UsageWindow: window,
	})
	msg := ""
	if sendErr != nil {
		msg = sendErr.Error()
	}
	now := time.Now()
	if err := m.st.SetInviteSent(ctx, inv.ID, now, msg); err != nil {
		return errors.Join(sendErr, fmt.Errorf("recording delivery of invite %d: %w", inv.ID, err))
	}
	if sendErr == nil {
		inv.SentAt, inv.SendError = now, ""
	} else {
		inv.SendError = msg
	}
	return sendErr
}

// loginLinker mints a 15-minute, one-use login link and mails it, for the
// email form on the login page.
type loginLinker struct {
	ops    ops
	mailer *inviteMailer
	param  string
	site   string // the site the links are for
}

// loginLinkTTL is short: the link is asked for by the person about to use it.
const loginLinkTTL = 15 * time.Minute

func (l *loginLinker) SendLoginLink(ctx context.Context, u *store.User, targetURL string) error {
	one := 1
	out, err := l.ops.createLink(ctx, newLink{
		User: strconv.FormatInt(u.ID, 10), URL: targetURL, TTL: loginLinkTTL.String(),
		MaxUses: &one, Mode: link.ModeLogin, Param: l.param, Site: l.site,
	}, "login-page")
	if err != nil {
		return err
	}
	site := ""
	if pu, err := url.Parse(targetURL); err == nil {
		site = pu.Hostname()
	}
	return l.mailer.sender.SendLoginLink(ctx, mail.LoginLink{To: u.Email, Name: u.Name, URL: out.URL, Site: site, ValidFor: loginLinkTTL})
}
