package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

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

// inviteMailer renders invite and sign-in mails and puts them in the
// store's outbox; the app's worker sends them (see internal/mail's Worker).
// So "sent" from SendInvite or SendLoginLink means queued: nothing on the
// request path waits for the relay, and a relay that is down delays mail
// instead of losing it.
//
// An invite's delivery is recorded on the invite (SetInviteSent) by the
// worker, after each attempt, not when the mail is queued: `invites list`
// then shows an invite as sent only once the relay took it, and the last
// error while it is retried. The mail names the invite by its Ref.
type inviteMailer struct {
	sender *mail.Sender
	st     store.Store
	worker *mail.Worker
	logger *zap.Logger
	// sendNow is set by the CLI, in which no worker runs: the first attempt
	// is made at once (the mail is enqueued claimed, so no gateway sends it
	// meanwhile), so that `invites create --send` can say whether it went.
	// A mail that failed stays queued for the gateways' workers.
	sendNow bool
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
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = mail.DefaultTimeout
	}
	m := &inviteMailer{sender: s, st: st, logger: zap.NewNop()}
	if a.logger != nil {
		m.logger = a.logger.Named("mail")
	}
	m.worker = mail.NewWorker(st, s, mail.WorkerOptions{
		// A claim must outlast the longest SMTP conversation.
		Lease:     max(mail.Lease, 10*timeout),
		Logger:    m.logger,
		Attempted: m.attempted,
	})
	return m, nil
}

// SendInvite renders the invite mail and queues it; a queued mail for the
// same invite (with a code the new one replaced) is superseded. With
// sendNow (the CLI) it is sent at once, and the outcome is recorded on inv.
func (m *inviteMailer) SendInvite(ctx context.Context, inv *store.Invite, code, loginURL string, window time.Duration) error {
	msg, err := m.sender.InviteMail(mail.Invite{
		To: inv.Email, Name: inv.Name, Code: code, LoginURL: loginURL, Site: inv.Site, UsageWindow: window,
	})
	if err != nil {
		return err
	}
	msg.Ref = strconv.FormatInt(inv.ID, 10)
	if !m.sendNow {
		return m.worker.Enqueue(ctx, msg)
	}
	sendErr := m.worker.SendNow(ctx, msg)
	switch {
	case sendErr == nil:
		inv.SentAt, inv.SendError = msg.SentAt, ""
	case msg.ID == 0:
		// Not even queued.
	case msg.State == store.MailQueued:
		inv.SendError = msg.LastError
		sendErr = fmt.Errorf("%w (mail %d stays queued: a running gateway retries it; see caddy latchkey mail list)", sendErr, msg.ID)
	default:
		inv.SendError = msg.LastError
	}
	return sendErr
}

// attempted records an invite mail's attempt on the invite; the worker calls
// it after every attempt.
func (m *inviteMailer) attempted(ctx context.Context, msg *store.Mail, sendErr error) {
	if msg.Kind != store.MailKindInvite {
		return
	}
	id, err := strconv.ParseInt(msg.Ref, 10, 64)
	if err != nil {
		return
	}
	at, text := msg.SentAt, ""
	if sendErr != nil {
		at, text = time.Now(), sendErr.Error()
	}
	if err := m.st.SetInviteSent(ctx, id, at, text); err != nil && !errors.Is(err, store.ErrNotFound) {
		m.logger.Warn("recording the delivery of an invite", zap.Int64("invite", id), zap.Int64("mail", msg.ID), zap.Error(err))
	}
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
	// Queued, never sent here: the answer must not take longer when the
	// address has an account (and a relay to wait for) than when not.
	msg, err := l.mailer.sender.LoginLinkMail(mail.LoginLink{To: u.Email, Name: u.Name, URL: out.URL, Site: site, ValidFor: loginLinkTTL}, time.Now())
	if err != nil {
		return err
	}
	msg.Ref = out.JTI
	return l.mailer.worker.Enqueue(ctx, msg)
}

// mailJSON is an outbox mail as the CLI and admin API show it: the
// envelope, never the bodies, which hold a live credential until sent.
type mailJSON struct {
	ID            int64      `json:"id"`
	Kind          string     `json:"kind"`
	Site          string     `json:"site,omitempty"`
	Ref           string     `json:"ref,omitempty"`
	To            string     `json:"to"`
	Subject       string     `json:"subject"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	SentAt        *time.Time `json:"sent_at,omitempty"`
	FailedAt      *time.Time `json:"failed_at,omitempty"`
}

func toMailJSON(m *store.Mail) mailJSON {
	j := mailJSON{
		ID: m.ID, Kind: m.Kind, Site: m.Site, Ref: m.Ref, To: m.To, Subject: m.Subject, State: m.State,
		Attempts: m.Attempts, LastError: m.LastError, CreatedAt: m.CreatedAt, ExpiresAt: optTime(m.ExpiresAt),
		SentAt: optTime(m.SentAt), FailedAt: optTime(m.FailedAt),
	}
	if m.State == store.MailQueued {
		j.NextAttemptAt = optTime(m.NextAttemptAt)
	}
	return j
}

// listMails lists the outbox newest first, for `mail list` and GET
// /latchkey/mail; limit 0 means 100.
func listMails(ctx context.Context, st store.Store, state string, limit int) ([]store.Mail, error) {
	switch state {
	case "", store.MailQueued, store.MailSending, store.MailSent, store.MailFailed:
	default:
		return nil, inputErr("mail state %q: want %s, %s, %s or %s", state, store.MailQueued, store.MailSending, store.MailSent, store.MailFailed)
	}
	if limit < 0 {
		return nil, inputErr("limit %d: want a positive number", limit)
	}
	if limit == 0 {
		limit = 100
	}
	ms, err := st.Mails(ctx, store.MailFilter{State: state, Limit: limit})
	for i := range ms {
		// The store leaves them out already; make sure, as they are secret.
		ms[i].Text, ms[i].HTML = "", ""
	}
	return ms, err
}
