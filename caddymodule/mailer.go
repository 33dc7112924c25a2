package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/ops"
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

// newMailer returns the mailer of the smtp config, nil when there is none.
// It queues mails in the store's outbox; the app's worker sends them.
func (a *App) newMailer(repl *caddy.Replacer, st store.Store) (*ops.OutboxMailer, error) {
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
	logger := zap.NewNop()
	if a.logger != nil {
		logger = a.logger.Named("mail")
	}
	return ops.NewOutboxMailer(s, st, time.Duration(c.Timeout), logger), nil
}
