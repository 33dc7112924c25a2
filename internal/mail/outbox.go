package mail

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	netmail "net/mail"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Mail is not sent while a request waits: the request renders it and puts it
// in the store's outbox, and a Worker sends it, retrying with backoff. A
// request for a sign-in link thus takes as long whether the address has an
// account or not, and a relay that is down delays mail instead of losing it.
//
// Rendering happens at enqueue time, so what is queued is exactly what is
// sent, whatever happens to the templates meanwhile.

// The outbox's retry schedule. The n-th failed attempt is retried after
// RetryFirst·2^(n-1), at most RetryMax, less up to a fifth at random so that
// gateways sharing a store do not retry in step: 30s, 1m, 2m, 4m, 8m, 16m,
// 32m, then hourly. A mail is given up after MaxAttempts attempts (10½ to
// 13 hours of trying with the defaults), when it is MaxAge old (which
// matters when no worker ran for a while), at once when the relay rejects
// it for good (a 5xx answer to RCPT or DATA), and as soon as the next try
// would come after the mail's own ExpiresAt (a sign-in link is dead after
// 15 minutes). They are variables so that tests can make them short; a
// Worker reads them when it is made.
var (
	RetryFirst   = 30 * time.Second
	RetryMax     = time.Hour
	MaxAttempts  = 20
	MaxAge       = 24 * time.Hour
	PollInterval = time.Second
	// Lease is how long a claim lasts: a worker that dies mid-send leaves
	// its mail to be taken over after this. It must exceed the longest SMTP
	// conversation: a caller with a long SMTP timeout should pass a longer
	// one in WorkerOptions.
	Lease = 5 * time.Minute
	// CountEvery is how often a worker counts the queued mails for
	// QueueDepth (after a poll), and CountLimit the most it counts.
	CountEvery = 15 * time.Second
	CountLimit = 10000
)

// Backoff is the wait after the attempt-th failed attempt (1 for the
// first), given jitter in [0, 1): first·2^(attempt-1) capped at max, less
// jitter·20%.
func Backoff(attempt int, first, max time.Duration, jitter float64) time.Duration {
	d := first
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - time.Duration(float64(d)*jitter/5)
}

// Permanent reports whether err means the mail can never be delivered as it
// is: the relay refused the recipient or the message with a 5xx reply, or
// the recipient is not an address. Everything else (a relay that is down,
// busy or refusing the sender's login) is retried.
func Permanent(err error) bool {
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	var se *gomail.SendError
	if !errors.As(err, &se) || se.IsTemp() {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		return se.ErrorCode() >= 500 && se.ErrorCode() < 600
	}
	return false
}

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// InviteMail renders inv for the outbox: a Mail of kind invite, to be
// enqueued with EnqueueMail (Ref is left for the caller).
func (s *Sender) InviteMail(inv Invite) (*store.Mail, error) {
	if inv.Code == "" || inv.LoginURL == "" {
		return nil, fmt.Errorf("mailing invite to %q: an invite needs a code and a login URL", inv.To)
	}
	subject, text, html, err := s.Render(inv)
	if err != nil {
		return nil, fmt.Errorf("mailing invite to %q: %w", inv.To, err)
	}
	return newMail(store.MailKindInvite, inv.Site, inv.To, inv.Name, subject, text, html)
}

// LoginLinkMail renders l for the outbox: a Mail of kind login_link, made
// at now, that expires with the link.
func (s *Sender) LoginLinkMail(l LoginLink, now time.Time) (*store.Mail, error) {
	if l.URL == "" {
		return nil, fmt.Errorf("mailing login link to %q: no URL", l.To)
	}
	subject, text, html, err := s.RenderLogin(l)
	if err != nil {
		return nil, fmt.Errorf("mailing login link to %q: %w", l.To, err)
	}
	m, err := newMail(store.MailKindLoginLink, l.Site, l.To, l.Name, subject, text, html)
	if err != nil {
		return nil, err
	}
	m.CreatedAt = now
	if l.ValidFor > 0 {
		m.ExpiresAt = now.Add(l.ValidFor)
	}
	return m, nil
}

func newMail(kind, site, to, name, subject, text, html string) (*store.Mail, error) {
	addr, err := netmail.ParseAddress(to)
	if err != nil {
		return nil, fmt.Errorf("mailing %s to %q: not an e-mail address: %w", kind, to, err)
	}
	if addr.Name != "" {
		name = addr.Name
	}
	return &store.Mail{Kind: kind, Site: site, To: addr.Address, ToName: name, Subject: subject, Text: text, HTML: html}, nil
}

// SendMail delivers a rendered mail, as the outbox keeps it.
func (s *Sender) SendMail(ctx context.Context, m *store.Mail) error {
	msg, err := s.message(m.To, m.ToName, m.Subject, m.Text, m.HTML)
	if err != nil {
		return fmt.Errorf("sending %s mail to %q: %w", m.Kind, m.To, permanentError{err})
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err == nil {
		err = c.DialAndSendWithContext(ctx, msg)
	}
	if err != nil {
		return fmt.Errorf("sending %s mail to %q via %s: %w", m.Kind, m.To, s.addr, err)
	}
	return nil
}

// MailSender is what a Worker sends with; *Sender is one.
type MailSender interface {
	SendMail(ctx context.Context, m *store.Mail) error
}

// WorkerOptions tune a Worker; zero fields take the package's variables.
type WorkerOptions struct {
	Poll        time.Duration
	Lease       time.Duration
	RetryFirst  time.Duration
	RetryMax    time.Duration
	MaxAttempts int
	MaxAge      time.Duration
	Now         func() time.Time // the clock; time.Now by default
	Jitter      func() float64   // in [0, 1); rand.Float64 by default
	Logger      *zap.Logger
	// Attempted is called after every attempt with the mail as it now
	// stands (State sent, queued for a retry, or failed) and the send's
	// error, nil for a delivery. It runs on the worker's goroutine, with a
	// context that is not cancelled by stopping the worker.
	Attempted func(ctx context.Context, m *store.Mail, sendErr error)
	// CountEvery overrides the package's CountEvery.
	CountEvery time.Duration
}

// Worker sends the outbox's mail. Any number of workers, in one process or
// in gateways sharing a store, may run on one outbox: the store's claim
// hands each mail to one of them at a time.
type Worker struct {
	st   store.Outbox
	send MailSender
	o    WorkerOptions
	wake chan struct{}
	wg   sync.WaitGroup
	// depth is the queued mails at the last count, -1 before the first;
	// counted is when that was (UnixNano).
	depth   atomic.Int64
	counted atomic.Int64
}

// NewWorker makes a worker; Start runs it.
func NewWorker(st store.Outbox, send MailSender, o WorkerOptions) *Worker {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Poll, PollInterval)
	def(&o.Lease, Lease)
	def(&o.RetryFirst, RetryFirst)
	def(&o.RetryMax, RetryMax)
	def(&o.MaxAge, MaxAge)
	def(&o.CountEvery, CountEvery)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = MaxAttempts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	w := &Worker{st: st, send: send, o: o, wake: make(chan struct{}, 1)}
	w.depth.Store(-1)
	return w
}

// QueueDepth is how many mails were queued in the outbox (due or waiting
// for a retry, by every gateway on the store) when the running worker last
// counted them, at most CountLimit; ok is false before it first did.
func (w *Worker) QueueDepth() (n int, ok bool) {
	d := w.depth.Load()
	return int(d), d >= 0
}

// count refreshes QueueDepth once CountEvery has passed since the last
// count; a failed count keeps the last one.
func (w *Worker) count(ctx context.Context) {
	now := time.Now().UnixNano() // the real clock: this paces the store, not mail
	last := w.counted.Load()
	if last != 0 && now-last < int64(w.o.CountEvery) || !w.counted.CompareAndSwap(last, now) {
		return
	}
	ms, err := w.st.Mails(ctx, store.MailFilter{State: store.MailQueued, Limit: CountLimit})
	if err != nil {
		return
	}
	w.depth.Store(int64(len(ms)))
}

// Enqueue puts m in the outbox and wakes the worker, so that it goes out at
// once rather than at the next poll. A zero CreatedAt is the worker's now.
func (w *Worker) Enqueue(ctx context.Context, m *store.Mail) error {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = w.o.Now()
	}
	if err := w.st.EnqueueMail(ctx, m); err != nil {
		return err
	}
	w.Wake()
	return nil
}

// Wake makes the worker look for due mail now. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Start runs the worker until ctx is cancelled. Cancelling does not cut a
// mail short: the one being sent is finished and marked first; Wait waits
// for that.
func (w *Worker) Start(ctx context.Context) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.o.Poll)
		defer t.Stop()
		for {
			w.drain(ctx)
			w.count(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-w.wake:
			}
		}
	}()
}

// Wait returns once every Start's worker has returned.
func (w *Worker) Wait() { w.wg.Wait() }

// drain sends due mail, one claim at a time, until none is due or ctx is
// cancelled.
func (w *Worker) drain(ctx context.Context) {
	for ctx.Err() == nil {
		now := w.o.Now()
		ms, err := w.st.ClaimMail(ctx, now, now.Add(w.o.Lease), 1)
		if err != nil {
			if ctx.Err() == nil {
				w.o.Logger.Warn("claiming mail from the outbox", zap.Error(err))
			}
			return
		}
		if len(ms) == 0 {
			return
		}
		// The claim is ours now: finish it even if ctx goes meanwhile.
		w.attempt(context.WithoutCancel(ctx), &ms[0])
	}
}

// SendNow enqueues m already claimed and makes the first attempt at once,
// for a process that runs no worker (the CLI). It returns the send's error;
// a mail that failed is queued for a retry by the workers of the gateways,
// unless it was given up.
func (w *Worker) SendNow(ctx context.Context, m *store.Mail) error {
	now := w.o.Now()
	m.CreatedAt, m.LeaseUntil = now, now.Add(w.o.Lease)
	if err := w.st.EnqueueMail(ctx, m); err != nil {
		return err
	}
	return w.attempt(context.WithoutCancel(ctx), m)
}

// attempt sends a claimed mail and records the outcome.
func (w *Worker) attempt(ctx context.Context, m *store.Mail) error {
	now := w.o.Now()
	var sendErr error
	switch {
	case !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt):
		sendErr = errors.New("expired before it could be sent")
	case m.Attempts > w.o.MaxAttempts:
		// Claimed again after its last allowed attempt was lost (a
		// worker died mid-send).
		sendErr = fmt.Errorf("gave up after %d attempts", m.Attempts-1)
	default:
		// What is left of the lease, by the worker's clock, bounds the
		// send (as a timeout: the clock may not be the real one).
		sctx, cancel := context.WithTimeout(ctx, m.LeaseUntil.Sub(now))
		sendErr = w.send.SendMail(sctx, m)
		cancel()
		if sendErr == nil {
			return w.record(ctx, m, nil, w.o.Now(), time.Time{})
		}
	}
	at := w.o.Now()
	retry := at.Add(Backoff(m.Attempts, w.o.RetryFirst, w.o.RetryMax, w.o.Jitter()))
	switch {
	case m.Attempts > w.o.MaxAttempts || (!m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt)):
		retry = time.Time{}
	case Permanent(sendErr):
		retry = time.Time{}
	case m.Attempts >= w.o.MaxAttempts:
		retry, sendErr = time.Time{}, fmt.Errorf("gave up after %d attempts: %w", m.Attempts, sendErr)
	case !retry.Before(m.CreatedAt.Add(w.o.MaxAge)):
		retry, sendErr = time.Time{}, fmt.Errorf("gave up after %s: %w", w.o.MaxAge, sendErr)
	case !m.ExpiresAt.IsZero() && !retry.Before(m.ExpiresAt):
		retry, sendErr = time.Time{}, fmt.Errorf("gave up: the next try would come after the mail expires: %w", sendErr)
	}
	return w.record(ctx, m, sendErr, at, retry)
}

// record marks the attempt in the store and tells Attempted. It returns
// sendErr, joined with the store's error if marking failed.
func (w *Worker) record(ctx context.Context, m *store.Mail, sendErr error, at, retry time.Time) error {
	lease := m.LeaseUntil
	var err error
	if sendErr == nil {
		err = w.st.MarkMailSent(ctx, m.ID, lease, at)
		m.State, m.SentAt, m.Text, m.HTML = store.MailSent, at, "", ""
	} else {
		err = w.st.MarkMailFailed(ctx, m.ID, lease, at, sendErr.Error(), retry)
		m.LastError = sendErr.Error()
		if retry.IsZero() {
			m.State, m.FailedAt, m.Text, m.HTML = store.MailFailed, at, "", ""
		} else {
			m.State, m.NextAttemptAt = store.MailQueued, retry
		}
	}
	m.LeaseUntil = time.Time{}
	log := w.o.Logger.With(zap.Int64("mail", m.ID), zap.String("kind", m.Kind), zap.Int("attempt", m.Attempts))
	switch {
	case err != nil:
		// Most likely the claim lapsed and another worker took the mail
		// over; the mail may go out twice, which beats losing it.
		log.Error("recording a mail attempt", zap.NamedError("send_error", sendErr), zap.Error(err))
		return errors.Join(sendErr, err)
	case sendErr == nil:
		log.Debug("mail sent")
	case retry.IsZero():
		log.Error("mail given up", zap.Error(sendErr))
	default:
		log.Warn("mail not sent; will retry", zap.Error(sendErr), zap.Time("retry_at", retry))
	}
	if w.o.Attempted != nil {
		w.o.Attempted(ctx, m, sendErr)
	}
	return sendErr
}
