package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// outboxTests are the outbox's part of the suite; Run runs them with the rest.
var outboxTests = []struct {
	name string
	f    func(t *testing.T, s store.Store)
}{
	{"MailEnqueue", testMailEnqueue},
	{"MailEnqueueRefused", testMailEnqueueRefused},
	{"MailList", testMailList},
	{"MailClaim", testMailClaim},
	{"MailClaimLapsedLease", testMailClaimLapsedLease},
	{"MailClaimConcurrent", testMailClaimConcurrent},
	{"MailSent", testMailSent},
	{"MailRetrySchedule", testMailRetrySchedule},
	{"MailGiveUp", testMailGiveUp},
	{"MailMarkStale", testMailMarkStale},
	{"MailSupersede", testMailSupersede},
	{"MailEnqueueClaimed", testMailEnqueueClaimed},
}

func newMail(to string, created time.Time) *store.Mail {
	return &store.Mail{
		Kind: store.MailKindLoginLink, Site: "example.com", Ref: "", To: to, ToName: "N " + to,
		Subject: "Sign in", Text: "link https://example.com/?token=secret-" + to,
		HTML: "<a href=\"https://example.com/?token=secret-" + to + "\">sign in</a>", CreatedAt: created,
	}
}

func mustEnqueue(t *testing.T, s store.Store, m *store.Mail) *store.Mail {
	t.Helper()
	if err := s.EnqueueMail(t.Context(), m); err != nil {
		t.Fatalf("EnqueueMail(%s): %v", m.To, err)
	}
	return m
}

func mustMail(t *testing.T, s store.Store, id int64) *store.Mail {
	t.Helper()
	m, err := s.Mail(t.Context(), id)
	if err != nil {
		t.Fatalf("Mail(%d): %v", id, err)
	}
	return m
}

func mustClaimMail(t *testing.T, s store.Store, now, lease time.Time, limit int) []store.Mail {
	t.Helper()
	ms, err := s.ClaimMail(t.Context(), now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimMail(%v): %v", now, err)
	}
	return ms
}

func mailIDs(ms []store.Mail) []int64 {
	var ids []int64
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

// diffMail lists the fields in which got differs from want.
func diffMail(got, want *store.Mail) []string {
	var d []string
	add := func(name string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	for _, f := range []struct{ name, g, w string }{
		{"Kind", got.Kind, want.Kind}, {"Site", got.Site, want.Site}, {"Ref", got.Ref, want.Ref},
		{"To", got.To, want.To}, {"ToName", got.ToName, want.ToName}, {"Subject", got.Subject, want.Subject},
		{"Text", got.Text, want.Text}, {"HTML", got.HTML, want.HTML}, {"State", got.State, want.State},
		{"LastError", got.LastError, want.LastError},
	} {
		if f.g != f.w {
			add(f.name, fmt.Sprintf("%q", f.g), fmt.Sprintf("%q", f.w))
		}
	}
	if got.Attempts != want.Attempts {
		add("Attempts", got.Attempts, want.Attempts)
	}
	for _, f := range []struct {
		name string
		g, w time.Time
	}{
		{"CreatedAt", got.CreatedAt, want.CreatedAt}, {"NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt},
		{"ExpiresAt", got.ExpiresAt, want.ExpiresAt}, {"LeaseUntil", got.LeaseUntil, want.LeaseUntil},
		{"SentAt", got.SentAt, want.SentAt}, {"FailedAt", got.FailedAt, want.FailedAt},
	} {
		if !equalTime(f.g, f.w) {
			add(f.name, f.g, f.w)
		}
	}
	return d
}

func testMailEnqueue(t *testing.T, s store.Store) {
	m := newMail("a@example.com", at(0))
	m.Kind, m.Ref, m.ExpiresAt = store.MailKindInvite, "42", at(time.Hour)
	want := *m
	mustEnqueue(t, s, m)
	if m.ID == 0 || m.State != store.MailQueued || m.Attempts != 0 || !m.NextAttemptAt.Equal(at(0)) {
		t.Errorf("written back: ID %d, State %q, Attempts %d, NextAttemptAt %v; want an ID, queued, 0, %v",
			m.ID, m.State, m.Attempts, m.NextAttemptAt, at(0))
	}
	want.ID, want.State, want.NextAttemptAt = m.ID, store.MailQueued, at(0)
	if d := diffMail(mustMail(t, s, m.ID), &want); d != nil {
		t.Errorf("Mail(%d): %v", m.ID, d)
	}

	// Defaults: CreatedAt now, NextAttemptAt CreatedAt; a given
	// NextAttemptAt is kept.
	before := time.Now()
	d := mustEnqueue(t, s, newMail("b@example.com", time.Time{}))
	if d.CreatedAt.Before(before.Add(-time.Second)) || d.CreatedAt.After(time.Now().Add(time.Second)) || !d.NextAttemptAt.Equal(d.CreatedAt) {
		t.Errorf("defaults: CreatedAt %v, NextAttemptAt %v; want now and the same", d.CreatedAt, d.NextAttemptAt)
	}
	later := newMail("c@example.com", at(0))
	later.NextAttemptAt = at(time.Minute)
	mustEnqueue(t, s, later)
	if got := mustMail(t, s, later.ID); !got.NextAttemptAt.Equal(at(time.Minute)) {
		t.Errorf("NextAttemptAt %v, want %v", got.NextAttemptAt, at(time.Minute))
	}

	if _, err := s.Mail(t.Context(), m.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Mail of a missing id: %v, want ErrNotFound", err)
	}
}

func testMailEnqueueRefused(t *testing.T, s store.Store) {
	for name, m := range map[string]*store.Mail{
		"no recipient": {Kind: store.MailKindInvite, CreatedAt: at(0)},
		"no kind":      {To: "a@example.com", CreatedAt: at(0)},
		"lease before": {Kind: store.MailKindInvite, To: "a@example.com", CreatedAt: at(0), LeaseUntil: at(0)},
	} {
		if err := s.EnqueueMail(t.Context(), m); err == nil {
			t.Errorf("%s: EnqueueMail succeeded", name)
		}
	}
	if ms, err := s.Mails(t.Context(), store.MailFilter{}); err != nil || len(ms) != 0 {
		t.Errorf("refused mails were stored: %+v %v", ms, err)
	}
}

func testMailList(t *testing.T, s store.Store) {
	ctx := t.Context()
	var ms []*store.Mail
	for i := range 5 {
		m := newMail(fmt.Sprintf("m%d@example.com", i), at(time.Duration(i)*time.Second))
		if i%2 == 0 {
			m.Kind, m.Ref = store.MailKindInvite, fmt.Sprint(i)
		}
		ms = append(ms, mustEnqueue(t, s, m))
	}
	// Same CreatedAt: newest insert first.
	tie := mustEnqueue(t, s, newMail("tie@example.com", at(4*time.Second)))
	c := mustClaimMail(t, s, at(time.Hour), at(2*time.Hour), 1)
	if len(c) != 1 || c[0].ID != ms[0].ID {
		t.Fatalf("claimed %v, want mail %d", mailIDs(c), ms[0].ID)
	}
	if err := s.MarkMailSent(ctx, ms[0].ID, at(2*time.Hour), at(time.Hour)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		f    store.MailFilter
		want []int64
	}{
		{store.MailFilter{}, []int64{tie.ID, ms[4].ID, ms[3].ID, ms[2].ID, ms[1].ID, ms[0].ID}},
		{store.MailFilter{Limit: 2}, []int64{tie.ID, ms[4].ID}},
		{store.MailFilter{State: store.MailQueued}, []int64{tie.ID, ms[4].ID, ms[3].ID, ms[2].ID, ms[1].ID}},
		{store.MailFilter{State: store.MailSent}, []int64{ms[0].ID}},
		{store.MailFilter{State: store.MailFailed}, nil},
		{store.MailFilter{Kind: store.MailKindInvite}, []int64{ms[4].ID, ms[2].ID, ms[0].ID}},
		{store.MailFilter{Kind: store.MailKindInvite, Ref: "2"}, []int64{ms[2].ID}},
	} {
		got, err := s.Mails(ctx, tc.f)
		if err != nil {
			t.Fatalf("Mails(%+v): %v", tc.f, err)
		}
		if !slices.Equal(mailIDs(got), tc.want) {
			t.Errorf("Mails(%+v) = %v, want %v", tc.f, mailIDs(got), tc.want)
		}
		// A listing never carries a body, queued or not.
		for _, m := range got {
			if m.Text != "" || m.HTML != "" {
				t.Errorf("Mails(%+v) returned the bodies of mail %d", tc.f, m.ID)
			}
			if m.To == "" || m.Subject == "" || m.State == "" || m.CreatedAt.IsZero() {
				t.Errorf("Mails(%+v): mail %d lacks its envelope: %+v", tc.f, m.ID, m)
			}
		}
	}
}

func testMailClaim(t *testing.T, s store.Store) {
	early := mustEnqueue(t, s, newMail("early@example.com", at(0)))
	late := newMail("late@example.com", at(0))
	late.NextAttemptAt = at(time.Minute)
	mustEnqueue(t, s, late)
	other := mustEnqueue(t, s, newMail("other@example.com", at(time.Second)))

	// Only what is due, oldest due first, at most limit.
	got := mustClaimMail(t, s, at(time.Second), at(time.Hour), 1)
	if !slices.Equal(mailIDs(got), []int64{early.ID}) {
		t.Fatalf("claimed %v, want [%d]", mailIDs(got), early.ID)
	}
	want := *early
	want.State, want.Attempts, want.LeaseUntil = store.MailSending, 1, at(time.Hour)
	if d := diffMail(&got[0], &want); d != nil {
		t.Errorf("claimed mail: %v", d)
	}
	if d := diffMail(mustMail(t, s, early.ID), &want); d != nil {
		t.Errorf("claimed mail as stored: %v", d)
	}
	got = mustClaimMail(t, s, at(time.Second), at(time.Hour), 10)
	if !slices.Equal(mailIDs(got), []int64{other.ID}) {
		t.Fatalf("second claim got %v, want [%d] (the claimed one is not due again, the late one not yet)", mailIDs(got), other.ID)
	}
	if got := mustClaimMail(t, s, at(time.Minute-time.Microsecond), at(time.Hour), 10); len(got) != 0 {
		t.Fatalf("claim before the late one is due: %v", mailIDs(got))
	}
	if got := mustClaimMail(t, s, at(time.Minute), at(time.Hour), 10); !slices.Equal(mailIDs(got), []int64{late.ID}) {
		t.Fatalf("claim when the late one is due: %v, want [%d]", mailIDs(got), late.ID)
	}
	if got := mustClaimMail(t, s, at(time.Minute), at(time.Hour), 10); len(got) != 0 {
		t.Fatalf("claim with everything claimed: %v", mailIDs(got))
	}
	if _, err := s.ClaimMail(t.Context(), at(time.Minute), at(time.Minute), 1); err == nil {
		t.Error("ClaimMail with a lease that is not after now succeeded")
	}
}

func testMailClaimLapsedLease(t *testing.T, s store.Store) {
	m := mustEnqueue(t, s, newMail("a@example.com", at(0)))
	mustClaimMail(t, s, at(0), at(time.Minute), 1)
	if got := mustClaimMail(t, s, at(time.Minute-time.Microsecond), at(time.Hour), 1); len(got) != 0 {
		t.Fatalf("claimed under a live lease: %v", mailIDs(got))
	}
	// The worker died: at the end of its lease the mail is claimable again,
	// and counts a second attempt.
	got := mustClaimMail(t, s, at(time.Minute), at(time.Hour), 1)
	if len(got) != 1 || got[0].ID != m.ID || got[0].Attempts != 2 || !got[0].LeaseUntil.Equal(at(time.Hour)) {
		t.Fatalf("claim after the lease lapsed: %+v", got)
	}
	// The first worker's late mark is refused; the second's goes through.
	if err := s.MarkMailSent(t.Context(), m.ID, at(time.Minute), at(2*time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("mark under the lapsed lease: %v, want ErrConflict", err)
	}
	if err := s.MarkMailSent(t.Context(), m.ID, at(time.Hour), at(2*time.Minute)); err != nil {
		t.Errorf("mark under the new lease: %v", err)
	}
}

// testMailClaimConcurrent has 20 workers claim from one queue at once, as
// gateways sharing a store do: each mail must be claimed exactly once.
func testMailClaimConcurrent(t *testing.T, s store.Store) {
	const mails, workers = 60, 20
	want := make(map[int64]bool)
	for i := range mails {
		m := mustEnqueue(t, s, newMail(fmt.Sprintf("m%d@example.com", i), at(time.Duration(i)*time.Microsecond)))
		want[m.ID] = true
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		claims = make(map[int64]int)
	)
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			for {
				ms, err := s.ClaimMail(t.Context(), at(time.Second), at(time.Hour), 1+w%3)
				if err != nil {
					t.Errorf("worker %d: ClaimMail: %v", w, err)
					return
				}
				if len(ms) == 0 {
					return
				}
				mu.Lock()
				for _, m := range ms {
					claims[m.ID]++
				}
				mu.Unlock()
				for _, m := range ms {
					if err := s.MarkMailSent(t.Context(), m.ID, m.LeaseUntil, at(2*time.Second)); err != nil {
						t.Errorf("worker %d: MarkMailSent(%d): %v", w, m.ID, err)
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if len(claims) != mails {
		t.Errorf("%d of %d mails claimed", len(claims), mails)
	}
	for id, n := range claims {
		if n != 1 || !want[id] {
			t.Errorf("mail %d claimed %d times", id, n)
		}
	}
	sent, err := s.Mails(t.Context(), store.MailFilter{State: store.MailSent})
	if err != nil || len(sent) != mails {
		t.Errorf("%d mails sent (%v), want %d", len(sent), err, mails)
	}
	for _, m := range sent {
		if m.Attempts != 1 {
			t.Errorf("mail %d: %d attempts, want 1", m.ID, m.Attempts)
		}
	}
}

func testMailSent(t *testing.T, s store.Store) {
	m := newMail("a@example.com", at(0))
	m.Ref = "ref-1"
	mustEnqueue(t, s, m)
	c := mustClaimMail(t, s, at(0), at(time.Minute), 1)
	if err := s.MarkMailSent(t.Context(), m.ID, c[0].LeaseUntil, at(time.Second)); err != nil {
		t.Fatal(err)
	}
	// The credential is gone; the envelope stays.
	want := *m
	want.State, want.Attempts, want.SentAt, want.Text, want.HTML = store.MailSent, 1, at(time.Second), "", ""
	if d := diffMail(mustMail(t, s, m.ID), &want); d != nil {
		t.Errorf("sent mail: %v", d)
	}
	if got := mustClaimMail(t, s, at(time.Hour), at(2*time.Hour), 10); len(got) != 0 {
		t.Errorf("a sent mail was claimed again: %v", mailIDs(got))
	}
}

// testMailRetrySchedule walks a mail through failed attempts on a backoff
// schedule: each retry is due exactly at the time it was given, not before.
func testMailRetrySchedule(t *testing.T, s store.Store) {
	m := mustEnqueue(t, s, newMail("a@example.com", at(0)))
	now := at(0)
	for i, wait := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, time.Hour} {
		c := mustClaimMail(t, s, now, now.Add(5*time.Minute), 1)
		if len(c) != 1 || c[0].ID != m.ID || c[0].Attempts != i+1 {
			t.Fatalf("attempt %d: claimed %+v", i+1, c)
		}
		if c[0].Text != m.Text || c[0].HTML != m.HTML {
			t.Fatalf("attempt %d: a retried mail lost its bodies", i+1)
		}
		failedAt := now.Add(time.Second)
		retry := failedAt.Add(wait)
		msg := fmt.Sprintf("attempt %d: 451 try later", i+1)
		if err := s.MarkMailFailed(t.Context(), m.ID, c[0].LeaseUntil, failedAt, msg, retry); err != nil {
			t.Fatal(err)
		}
		got := mustMail(t, s, m.ID)
		if got.State != store.MailQueued || got.LastError != msg || !got.NextAttemptAt.Equal(retry) || !got.LeaseUntil.IsZero() || got.Attempts != i+1 {
			t.Fatalf("after failed attempt %d: %+v", i+1, got)
		}
		if c := mustClaimMail(t, s, retry.Add(-time.Microsecond), retry.Add(time.Hour), 1); len(c) != 0 {
			t.Fatalf("attempt %d: claimed before its retry time", i+2)
		}
		now = retry
	}
}

// testMailGiveUp fails a mail as often as a worker allows and then gives it
// up: failed for good, its bodies blanked, never claimed again.
func testMailGiveUp(t *testing.T, s store.Store) {
	const maxAttempts = 5
	m := mustEnqueue(t, s, newMail("a@example.com", at(0)))
	now := at(0)
	for i := 1; i <= maxAttempts; i++ {
		c := mustClaimMail(t, s, now, now.Add(time.Minute), 1)
		if len(c) != 1 || c[0].Attempts != i {
			t.Fatalf("attempt %d: claimed %+v", i, c)
		}
		retry := now.Add(time.Duration(i) * time.Minute)
		if i == maxAttempts {
			retry = time.Time{}
		}
		if err := s.MarkMailFailed(t.Context(), m.ID, c[0].LeaseUntil, now, fmt.Sprintf("550 no such user (%d)", i), retry); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Duration(i) * time.Minute)
	}
	got := mustMail(t, s, m.ID)
	want := *m
	want.State, want.Attempts, want.LastError, want.Text, want.HTML = store.MailFailed, maxAttempts, "550 no such user (5)", "", ""
	want.NextAttemptAt, want.FailedAt = at(10*time.Minute), at(10*time.Minute)
	if d := diffMail(got, &want); d != nil {
		t.Errorf("given up: %v", d)
	}
	if c := mustClaimMail(t, s, at(1000*time.Hour), at(1001*time.Hour), 10); len(c) != 0 {
		t.Errorf("a failed mail was claimed: %v", mailIDs(c))
	}
	if failed, err := s.Mails(t.Context(), store.MailFilter{State: store.MailFailed}); err != nil || len(failed) != 1 {
		t.Errorf("failed mails: %v %v", mailIDs(failed), err)
	}
}

func testMailMarkStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := mustEnqueue(t, s, newMail("a@example.com", at(0)))
	// Not claimed: nothing to mark.
	if err := s.MarkMailSent(ctx, m.ID, at(time.Minute), at(0)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("marking a queued mail sent: %v, want ErrConflict", err)
	}
	if err := s.MarkMailFailed(ctx, m.ID, at(time.Minute), at(0), "x", time.Time{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("failing a queued mail: %v, want ErrConflict", err)
	}
	c := mustClaimMail(t, s, at(0), at(time.Minute), 1)
	if err := s.MarkMailFailed(ctx, m.ID, at(2*time.Minute), at(0), "x", at(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("failing under another lease: %v, want ErrConflict", err)
	}
	if err := s.MarkMailSent(ctx, m.ID, c[0].LeaseUntil, at(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkMailSent(ctx, m.ID, c[0].LeaseUntil, at(time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("marking sent twice: %v, want ErrConflict", err)
	}
	if err := s.MarkMailFailed(ctx, m.ID, c[0].LeaseUntil, at(time.Second), "x", at(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("failing a sent mail: %v, want ErrConflict", err)
	}
	if got := mustMail(t, s, m.ID); got.State != store.MailSent || got.LastError != "" {
		t.Errorf("a refused mark changed the mail: %+v", got)
	}
	for name, err := range map[string]error{
		"sent":   s.MarkMailSent(ctx, m.ID+1000, at(time.Minute), at(0)),
		"failed": s.MarkMailFailed(ctx, m.ID+1000, at(time.Minute), at(0), "x", at(time.Hour)),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("marking a missing mail %s: %v, want ErrNotFound", name, err)
		}
	}
}

// testMailSupersede: a new mail about the same thing (a resent invite, with
// a new code) replaces the queued ones, whose codes no longer work.
func testMailSupersede(t *testing.T, s store.Store) {
	invite := func(to, ref string, d time.Duration) *store.Mail {
		m := newMail(to, at(d))
		m.Kind, m.Ref = store.MailKindInvite, ref
		return mustEnqueue(t, s, m)
	}
	// One mail about invite 7 is being sent; another is queued.
	inFlight := invite("a@example.com", "7", 0)
	if c := mustClaimMail(t, s, at(0), at(time.Hour), 1); len(c) != 1 || c[0].ID != inFlight.ID {
		t.Fatalf("claimed %v", mailIDs(c))
	}
	old := invite("a@example.com", "7", time.Second)
	if got := mustMail(t, s, inFlight.ID); got.State != store.MailSending {
		t.Fatalf("a mail being sent was superseded: %+v", got)
	}
	otherRef := invite("b@example.com", "8", 2*time.Second)
	otherKind := newMail("a@example.com", at(2*time.Second))
	otherKind.Ref = "7"
	mustEnqueue(t, s, otherKind)
	noRef := mustEnqueue(t, s, newMail("c@example.com", at(2*time.Second)))
	noRef2 := mustEnqueue(t, s, newMail("c@example.com", at(2*time.Second)))

	fresh := invite("a@example.com", "7", 3*time.Second)
	got := mustMail(t, s, old.ID)
	if got.State != store.MailFailed || got.LastError != fmt.Sprintf("superseded by mail %d", fresh.ID) ||
		got.Text != "" || got.HTML != "" || !got.FailedAt.Equal(at(3*time.Second)) {
		t.Errorf("superseded mail: %+v", got)
	}
	for _, m := range []*store.Mail{inFlight, otherRef, otherKind, noRef, noRef2, fresh} {
		if got := mustMail(t, s, m.ID); got.State == store.MailFailed || got.Text == "" {
			t.Errorf("mail %d (kind %s, ref %q) was superseded: %+v", m.ID, m.Kind, m.Ref, got)
		}
	}
}

// testMailEnqueueClaimed: the CLI enqueues a mail already claimed and sends
// it itself; nobody else claims it unless its lease lapses.
func testMailEnqueueClaimed(t *testing.T, s store.Store) {
	m := newMail("a@example.com", at(0))
	m.LeaseUntil = at(time.Minute)
	mustEnqueue(t, s, m)
	if m.State != store.MailSending || m.Attempts != 1 {
		t.Errorf("enqueued claimed: state %q, attempts %d", m.State, m.Attempts)
	}
	if c := mustClaimMail(t, s, at(time.Second), at(time.Hour), 1); len(c) != 0 {
		t.Fatalf("a mail enqueued claimed was claimed by another: %v", mailIDs(c))
	}
	if err := s.MarkMailFailed(t.Context(), m.ID, at(time.Minute), at(time.Second), "down", at(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := mustClaimMail(t, s, at(30*time.Second), at(time.Hour), 1)
	if len(c) != 1 || c[0].Attempts != 2 || c[0].Text != m.Text {
		t.Fatalf("retry of a mail enqueued claimed: %+v", c)
	}
}
