package ops

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// Mails lists the outbox newest first, without bodies; limit 0 means 100.
func (o *Ops) Mails(ctx context.Context, state string, limit int) ([]store.Mail, error) {
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
	ms, err := o.Store.Mails(ctx, store.MailFilter{State: state, Limit: limit})
	for i := range ms {
		// The store leaves them out already; make sure, as they are secret.
		ms[i].Text, ms[i].HTML = "", ""
	}
	return ms, err
}

// OutboxMailer renders invite and sign-in mails and puts them in the
// store's outbox; its worker sends them (see mail.Worker). So "sent" from
// SendInvite or SendLoginLink means queued: nothing on the request path
// waits for the relay, and a relay that is down delays mail instead of
// losing it.
//
// An invite's delivery is recorded on the invite (SetInviteSent) by the
// worker, after each attempt, not when the mail is queued: `invites list`
// then shows an invite as sent only once the relay took it, and the last
// error while it is retried. The mail names the invite by its Ref.
type OutboxMailer struct {
	sender *mail.Sender
	st     store.Store
	worker *mail.Worker
	logger *zap.Logger
	// SendNow is set by the CLI, in which no worker runs: the first attempt
	// at an invite is made at once (the mail is enqueued claimed, so no
	// gateway sends it meanwhile), so that `invites create --send` can say
	// whether it went. A mail that failed stays queued for the gateways'
	// workers.
	SendNow bool
}

// NewOutboxMailer returns a mailer that sends through sender; timeout is
// the sender's longest SMTP conversation (0 for mail.DefaultTimeout).
func NewOutboxMailer(sender *mail.Sender, st store.Store, timeout time.Duration, logger *zap.Logger) *OutboxMailer {
	if timeout <= 0 {
		timeout = mail.DefaultTimeout
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	m := &OutboxMailer{sender: sender, st: st, logger: logger}
	m.worker = mail.NewWorker(st, sender, mail.WorkerOptions{
		// A claim must outlast the longest SMTP conversation.
		Lease:     max(mail.Lease, 10*timeout),
		Logger:    logger,
		Attempted: m.attempted,
	})
	return m
}

// Start runs the worker that sends the outbox until ctx ends.
func (m *OutboxMailer) Start(ctx context.Context) { m.worker.Start(ctx) }

// Wait waits for the worker to finish the mail in flight after its context
// ended.
func (m *OutboxMailer) Wait() { m.worker.Wait() }

// QueueDepth is the outbox's queued mails as of the worker's last count
// (see mail.Worker.QueueDepth).
func (m *OutboxMailer) QueueDepth() (int, bool) { return m.worker.QueueDepth() }

// SendInvite renders the invite mail and queues it; a queued mail for the
// same invite (with a code the new one replaced) is superseded. With
// SendNow it is sent at once, and the outcome is recorded on inv.
func (m *OutboxMailer) SendInvite(ctx context.Context, inv *store.Invite, code, loginURL string, window time.Duration) error {
	msg, err := m.sender.InviteMail(mail.Invite{
		To: inv.Email, Name: inv.Name, Code: code, LoginURL: loginURL, Site: inv.Site, UsageWindow: window,
	})
	if err != nil {
		return err
	}
	msg.Ref = strconv.FormatInt(inv.ID, 10)
	if !m.SendNow {
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

// SendLoginLink renders a sign-in link mail and queues it, never sending it
// at once (not even with SendNow): the login form's answer must not take
// longer when the address has an account than when not.
func (m *OutboxMailer) SendLoginLink(ctx context.Context, l mail.LoginLink, ref string) error {
	msg, err := m.sender.LoginLinkMail(l, time.Now())
	if err != nil {
		return err
	}
	msg.Ref = ref
	return m.worker.Enqueue(ctx, msg)
}

// attempted records an invite mail's attempt on the invite; the worker calls
// it after every attempt.
func (m *OutboxMailer) attempted(ctx context.Context, msg *store.Mail, sendErr error) {
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
