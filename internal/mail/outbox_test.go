package mail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

func TestBackoff(t *testing.T) {
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, w := range want {
		if got := Backoff(i+1, RetryFirst, RetryMax, 0); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
		// Jitter takes off up to a fifth, never adds.
		if got := Backoff(i+1, RetryFirst, RetryMax, 0.9999); got > w || got < w*4/5 {
			t.Errorf("Backoff(%d) with jitter = %v, want within [%v, %v]", i+1, got, w*4/5, w)
		}
	}
	if got := Backoff(1000, RetryFirst, RetryMax, 0); got != time.Hour {
		t.Errorf("Backoff(1000) = %v, want the cap", got)
	}
	// With the defaults, MaxAttempts ends the trying within MaxAge.
	var total time.Duration
	for i := 1; i < MaxAttempts; i++ {
		total += Backoff(i, RetryFirst, RetryMax, 0)
	}
	if total >= MaxAge {
		t.Errorf("%d attempts span %v, longer than MaxAge %v", MaxAttempts, total, MaxAge)
	}
	t.Logf("%d attempts span %v", MaxAttempts, total)
}

// fakeClock is the worker's clock in these tests: time moves only when the
// test says so.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// switchListener is a relay's listener that can be "down": it then hangs up
// on every connection before the greeting.
type switchListener struct {
	net.Listener
	down atomic.Bool
}

func (l *switchListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.down.Load() {
			return c, err
		}
		c.Close()
	}
}

// switchedRelay starts a relay that is down until its listener's down is
// cleared.
func switchedRelay(t *testing.T, be *mailtest.Backend) (addr string, sw *switchListener) {
	addr = mailtest.Serve(t, be, func(_ *smtp.Server, l net.Listener) net.Listener {
		sw = &switchListener{Listener: l}
		sw.down.Store(true)
		return sw
	})
	return addr, sw
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "latchkey.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitFor polls cond until it holds, for at most 5 seconds of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// attempts records what a worker reports through Attempted.
type attempts struct {
	mu   sync.Mutex
	list []string // "<id> <state> <error>"
}

func (a *attempts) record(_ context.Context, m *store.Mail, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, fmt.Sprintf("%d %s %v", m.ID, m.State, err))
}

// waitFor returns the attempts once there are n (or after five seconds):
// the worker calls back after the store has recorded an attempt, so a test
// that saw the store's state may be ahead of the callback.
func (a *attempts) waitFor(n int) []string {
	seen := a.get()
	for deadline := time.Now().Add(5 * time.Second); len(seen) < n && time.Now().Before(deadline); seen = a.get() {
		time.Sleep(time.Millisecond)
	}
	return seen
}

func (a *attempts) get() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.list...)
}

type workerRig struct {
	t     *testing.T
	st    *sqlite.Store
	s     *Sender
	clock *fakeClock
	w     *Worker
	seen  *attempts
	stop  context.CancelFunc
}

// startWorker runs a worker on a fresh store with a fake clock and no
// jitter, polling every few milliseconds.
func startWorker(t *testing.T, addr string, o WorkerOptions) *workerRig {
	r := &workerRig{t: t, st: openStore(t), s: newSender(t, Config{Addr: addr, Timeout: 2 * time.Second}),
		clock: &fakeClock{now: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)}, seen: &attempts{}}
	o.Now, o.Jitter, o.Attempted = r.clock.Now, func() float64 { return 0 }, r.seen.record
	if o.Poll == 0 {
		o.Poll = 3 * time.Millisecond
	}
	r.w = NewWorker(r.st, r.s, o)
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = func() { cancel(); r.w.Wait() }
	r.w.Start(ctx)
	t.Cleanup(r.stop)
	return r
}

func (r *workerRig) enqueueInvite(inv Invite, ref string) *store.Mail {
	r.t.Helper()
	m, err := r.s.InviteMail(inv)
	if err != nil {
		r.t.Fatal(err)
	}
	m.Ref = ref
	if err := r.w.Enqueue(r.t.Context(), m); err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *workerRig) mail(id int64) *store.Mail {
	r.t.Helper()
	m, err := r.st.Mail(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// waitState waits for the mail to reach state after its n-th attempt.
func (r *workerRig) waitState(id int64, state string, n int) *store.Mail {
	r.t.Helper()
	var m *store.Mail
	waitFor(r.t, fmt.Sprintf("mail %d to be %s after attempt %d", id, state, n), func() bool {
		m = r.mail(id)
		return m.State == state && m.Attempts == n
	})
	return m
}

func TestWorkerRetriesUntilRelayComesBack(t *testing.T) {
	be := &mailtest.Backend{}
	addr, relay := switchedRelay(t, be)
	r := startWorker(t, addr, WorkerOptions{})
	m := r.enqueueInvite(leonard, "7")
	subject, text, html, err := r.s.Render(leonard)
	if err != nil {
		t.Fatal(err)
	}
	// Rendered when enqueued: what is queued is what will be sent.
	if m.Subject != subject || m.Text != text || m.HTML != html || m.To != "leonard@example.com" || m.ToName != leonard.Name {
		t.Fatalf("enqueued mail: %+v", m)
	}
	t0 := r.clock.Now()

	got := r.waitState(m.ID, store.MailQueued, 1)
	if got.LastError == "" || !strings.Contains(got.LastError, addr) || !got.NextAttemptAt.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after the first attempt: error %q, next attempt %v; want an error naming %s and %v",
			got.LastError, got.NextAttemptAt, addr, t0.Add(30*time.Second))
	}
	if got.Text != text || got.HTML != html {
		t.Error("a mail to be retried lost its bodies")
	}

	// The relay is back, but the retry is not due yet.
	relay.down.Store(false)
	r.clock.Add(30*time.Second - time.Millisecond)
	time.Sleep(30 * time.Millisecond) // ten polls
	if n := len(be.Messages()); n != 0 || r.mail(m.ID).Attempts != 1 {
		t.Fatalf("retried before its time: %d mails, %d attempts", n, r.mail(m.ID).Attempts)
	}
	r.clock.Add(time.Millisecond)
	got = r.waitState(m.ID, store.MailSent, 2)
	if got.Text != "" || got.HTML != "" || !got.SentAt.Equal(t0.Add(30*time.Second)) {
		t.Errorf("sent mail: bodies %q %q, sent at %v", got.Text, got.HTML, got.SentAt)
	}
	msgs := be.Messages()
	if len(msgs) != 1 {
		t.Fatalf("relay got %d mails, want 1", len(msgs))
	}
	p := parse(t, msgs[0].Data)
	if p.subject != subject || !strings.Contains(p.text, leonard.Code) || !strings.Contains(p.html, leonard.Code) {
		t.Errorf("delivered mail: subject %q, text %q", p.subject, p.text)
	}
	seen := r.seen.waitFor(2)
	if len(seen) != 2 || !strings.HasPrefix(seen[0], fmt.Sprintf("%d queued ", m.ID)) || seen[1] != fmt.Sprintf("%d sent <nil>", m.ID) {
		t.Errorf("Attempted saw %q", seen)
	}
}

// rejectBackend is a relay that refuses every recipient for good.
type rejectBackend struct{}

func (rejectBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return rejectSession{}, nil }

type rejectSession struct{}

func (rejectSession) Mail(string, *smtp.MailOptions) error { return nil }
func (rejectSession) Rcpt(string, *smtp.RcptOptions) error {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
}
func (rejectSession) Data(io.Reader) error { return errors.New("no data expected") }
func (rejectSession) Reset()               {}
func (rejectSession) Logout() error        { return nil }

func TestWorkerPermanentFailure(t *testing.T) {
	srv := smtp.NewServer(rejectBackend{})
	srv.Domain = "localhost"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	r := startWorker(t, l.Addr().String(), WorkerOptions{})
	m := r.enqueueInvite(leonard, "7")
	got := r.waitState(m.ID, store.MailFailed, 1)
	if !strings.Contains(got.LastError, "550") || !strings.Contains(got.LastError, "no such user here") || got.Text != "" || got.HTML != "" || got.FailedAt.IsZero() {
		t.Errorf("permanently refused mail: %+v", got)
	}
	// Never tried again, however long we wait.
	r.clock.Add(48 * time.Hour)
	time.Sleep(20 * time.Millisecond)
	if got := r.mail(m.ID); got.Attempts != 1 || got.State != store.MailFailed {
		t.Errorf("after two days: %+v", got)
	}
}

func TestWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	addr, _ := switchedRelay(t, &mailtest.Backend{})
	r := startWorker(t, addr, WorkerOptions{MaxAttempts: 4})
	m := r.enqueueInvite(leonard, "7")
	for n, wait := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute} {
		r.waitState(m.ID, store.MailQueued, n+1)
		r.clock.Add(wait)
	}
	got := r.waitState(m.ID, store.MailFailed, 4)
	if !strings.HasPrefix(got.LastError, "gave up after 4 attempts: ") || !strings.Contains(got.LastError, addr) || got.Text != "" {
		t.Errorf("given up: %+v", got)
	}
	if seen := r.seen.waitFor(4); len(seen) != 4 || !strings.HasPrefix(seen[3], fmt.Sprintf("%d failed gave up", m.ID)) {
		t.Errorf("Attempted saw %q", seen)
	}
}

func TestWorkerGivesUpAfterMaxAge(t *testing.T) {
	addr, _ := switchedRelay(t, &mailtest.Backend{})
	r := startWorker(t, addr, WorkerOptions{MaxAge: 3 * time.Minute})
	m := r.enqueueInvite(leonard, "7")
	r.waitState(m.ID, store.MailQueued, 1)
	r.clock.Add(30 * time.Second)
	r.waitState(m.ID, store.MailQueued, 2)
	r.clock.Add(time.Minute)
	// The third try fails at 1m30s; the next would be at 3m30s.
	if got := r.waitState(m.ID, store.MailFailed, 3); !strings.HasPrefix(got.LastError, "gave up after 3m0s: ") {
		t.Errorf("given up: %+v", got)
	}
}

// A sign-in link works for 15 minutes; its mail is not worth sending after.
func TestWorkerLoginLinkExpires(t *testing.T) {
	addr, _ := switchedRelay(t, &mailtest.Backend{})
	r := startWorker(t, addr, WorkerOptions{})
	m, err := r.s.LoginLinkMail(LoginLink{To: "nia@example.com", URL: "https://example.com/?token=t", Site: "example.com", ValidFor: time.Minute}, r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != store.MailKindLoginLink || !m.ExpiresAt.Equal(r.clock.Now().Add(time.Minute)) {
		t.Fatalf("login link mail: %+v", m)
	}
	if err := r.w.Enqueue(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	r.waitState(m.ID, store.MailQueued, 1)
	r.clock.Add(30 * time.Second)
	// The second try fails at 30s; the next would be at 1m30s, after the link died.
	if got := r.waitState(m.ID, store.MailFailed, 2); !strings.Contains(got.LastError, "expires") {
		t.Errorf("given up: %+v", got)
	}

	// A mail claimed after it expired is not sent at all.
	be := &mailtest.Backend{}
	r2 := startWorker(t, mailtest.Serve(t, be, nil), WorkerOptions{})
	late := &store.Mail{Kind: store.MailKindLoginLink, To: "nia@example.com", Subject: "s", Text: "t", HTML: "h",
		CreatedAt: r2.clock.Now().Add(-time.Hour), ExpiresAt: r2.clock.Now().Add(-time.Minute)}
	if err := r2.w.Enqueue(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	if got := r2.waitState(late.ID, store.MailFailed, 1); got.LastError != "expired before it could be sent" || len(be.Messages()) != 0 {
		t.Errorf("expired mail: %+v, %d delivered", got, len(be.Messages()))
	}
}

// slowListener delays every connection's greeting, like a relay that takes
// its time.
type slowListener struct {
	net.Listener
	delay time.Duration
}

func (l slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		time.Sleep(l.delay)
	}
	return c, err
}

func TestWorkerStopFinishesTheMailInFlight(t *testing.T) {
	be := &mailtest.Backend{}
	addr := mailtest.Serve(t, be, func(_ *smtp.Server, l net.Listener) net.Listener {
		return slowListener{Listener: l, delay: 200 * time.Millisecond}
	})
	r := startWorker(t, addr, WorkerOptions{})
	m := r.enqueueInvite(leonard, "7")
	waitFor(t, "the mail to be claimed", func() bool { return r.mail(m.ID).State == store.MailSending })
	r.stop() // cancels while the relay has not even greeted
	if got := r.mail(m.ID); got.State != store.MailSent || len(be.Messages()) != 1 {
		t.Errorf("after stopping mid-send: %+v, %d delivered", got, len(be.Messages()))
	}
}

func TestWorkerWakesOnEnqueue(t *testing.T) {
	be := &mailtest.Backend{}
	r := startWorker(t, mailtest.Serve(t, be, nil), WorkerOptions{Poll: time.Hour})
	// Let the first, empty round pass, so that only Wake can start the next.
	time.Sleep(10 * time.Millisecond)
	m := r.enqueueInvite(leonard, "7")
	r.waitState(m.ID, store.MailSent, 1)
}

// Several workers on one store, like gateways sharing it: every mail goes
// out exactly once.
func TestWorkersShareOneOutbox(t *testing.T) {
	be := &mailtest.Backend{}
	addr := mailtest.Serve(t, be, nil)
	r := startWorker(t, addr, WorkerOptions{})
	for range 3 {
		w := NewWorker(r.st, r.s, WorkerOptions{Poll: 3 * time.Millisecond, Now: r.clock.Now})
		ctx, cancel := context.WithCancel(context.Background())
		w.Start(ctx)
		t.Cleanup(func() { cancel(); w.Wait() })
	}
	const n = 20
	for i := range n {
		inv := leonard
		inv.To = fmt.Sprintf("p%d@example.com", i)
		r.enqueueInvite(inv, fmt.Sprint(i))
	}
	waitFor(t, "every mail to be sent", func() bool {
		ms, err := r.st.Mails(context.Background(), store.MailFilter{State: store.MailSent})
		return err == nil && len(ms) == n
	})
	got := make(map[string]int)
	for _, msg := range be.Messages() {
		got[msg.To[0]]++
	}
	for i := range n {
		if to := fmt.Sprintf("p%d@example.com", i); got[to] != 1 {
			t.Errorf("%s got %d mails", to, got[to])
		}
	}
	if len(be.Messages()) != n {
		t.Errorf("%d mails delivered, want %d", len(be.Messages()), n)
	}
}

// SendNow is for the CLI, which runs no worker: the first attempt is made
// at once, and a failure leaves the mail queued for the gateways.
func TestSendNow(t *testing.T) {
	be := &mailtest.Backend{}
	addr, relay := switchedRelay(t, be)
	r := &workerRig{t: t, st: openStore(t), s: newSender(t, Config{Addr: addr, Timeout: 2 * time.Second}),
		clock: &fakeClock{now: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)}, seen: &attempts{}}
	r.w = NewWorker(r.st, r.s, WorkerOptions{Now: r.clock.Now, Jitter: func() float64 { return 0 }, Attempted: r.seen.record})

	m, err := r.s.InviteMail(leonard)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.w.SendNow(t.Context(), m); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("SendNow to a relay that is down: %v", err)
	}
	if got := r.mail(m.ID); got.State != store.MailQueued || got.Attempts != 1 || got.Text == "" {
		t.Errorf("after a failed SendNow: %+v", got)
	}
	relay.down.Store(false)
	m2, _ := r.s.InviteMail(leonard)
	if err := r.w.SendNow(t.Context(), m2); err != nil {
		t.Fatal(err)
	}
	if got := r.mail(m2.ID); got.State != store.MailSent || len(be.Messages()) != 1 {
		t.Errorf("after SendNow: %+v, %d delivered", got, len(be.Messages()))
	}
	if seen := r.seen.get(); len(seen) != 2 {
		t.Errorf("Attempted saw %q", seen)
	}
}
