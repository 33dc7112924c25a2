package throttle

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// memShared is a store's failure counts, shared by the limiters of several
// gateways in this test.
type memShared struct {
	mu    sync.Mutex
	reads int
	rows  map[string]struct {
		start time.Time
		n     int
	}
}

func (m *memShared) Failures(_ context.Context, key string, w time.Duration, now time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	r, ok := m.rows[key]
	if !ok || !now.Before(r.start.Add(w)) {
		return 0, time.Time{}, nil
	}
	return r.n, r.start.Add(w), nil
}

func (m *memShared) AddFailure(_ context.Context, key string, w time.Duration, now time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows == nil {
		m.rows = map[string]struct {
			start time.Time
			n     int
		}{}
	}
	r := m.rows[key]
	if r.n == 0 || !now.Before(r.start.Add(w)) {
		r.start, r.n = now, 0
	}
	r.n++
	m.rows[key] = r
	return r.n, r.start.Add(w), nil
}

// sharedT0 is the tests' clock's start.
var sharedT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// twoGateways are two gateways' limiters on one store.
func twoGateways(limit int, name string) (a, b *Limiter, st *memShared) {
	st = &memShared{}
	return New(limit, time.Minute).Share(st, name), New(limit, time.Minute).Share(st, name), st
}

// Two gateways on one store: wrong guesses alternated between them are
// throttled as one.
func TestSharedLimitersCountTogether(t *testing.T) {
	ctx, now := context.Background(), sharedT0
	a, b, st := twoGateways(10, "invite.ip")
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		r, ok, _ := l.ReserveShared(ctx, "192.0.2.1", now)
		if !ok {
			t.Fatalf("guess %d refused before the limit", i)
		}
		r.Fail(ctx, now)
	}
	for _, l := range []*Limiter{a, b} {
		if _, ok, wait := l.ReserveShared(ctx, "192.0.2.1", now.Add(time.Second)); ok || wait != 59*time.Second {
			t.Errorf("after 10 failures on two gateways: ok=%v wait=%v; want refused for 59s", ok, wait)
		}
	}
	// Each gateway alone saw 5: without the store, both would admit more.
	if _, ok, _ := New(10, time.Minute).ReserveShared(ctx, "192.0.2.1", now); !ok {
		t.Error("an unshared limiter is refused")
	}
	// The store's keys are digests, not client text.
	for k := range st.rows {
		if len(k) != len("invite.ip:")+32 {
			t.Errorf("store key %q", k)
		}
	}
	if _, ok, _ := a.ReserveShared(ctx, "192.0.2.1", now.Add(time.Minute)); !ok {
		t.Error("still refused after the window")
	}
}

// TestSharedCountRemembered: good attempts in a row cost one store read per
// SharedFresh, not one each; another gateway's failures are seen once the
// clean count read is older than SharedFresh; a key with failures is read
// every time, and a count at the limit refuses without reading again.
func TestSharedCountRemembered(t *testing.T) {
	ctx, now := context.Background(), sharedT0
	a, b, st := twoGateways(3, "link.ip")
	good := func(l *Limiter, at time.Time) bool {
		r, ok, _ := l.ReserveShared(ctx, "192.0.2.7", at)
		if ok {
			r.Release()
		}
		return ok
	}
	for i := range 100 {
		if !good(a, now.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatal("a good attempt refused")
		}
	}
	if st.reads != 1 {
		t.Errorf("100 good attempts in 100ms read the store %d times, want 1", st.reads)
	}
	// B fails three times: A, which read the key as clean just now, sees it
	// once its reading is SharedFresh old.
	for range 3 {
		r, ok, _ := b.ReserveShared(ctx, "192.0.2.7", now)
		if !ok {
			t.Fatal("B refused before the limit")
		}
		r.Fail(ctx, now)
	}
	if _, ok, _ := b.ReserveShared(ctx, "192.0.2.7", now.Add(time.Millisecond)); ok {
		t.Error("B admits a fourth attempt after its own three failures")
	}
	if !good(a, now.Add(SharedFresh-time.Millisecond)) {
		t.Error("A refused on a count it has not read yet")
	}
	at := now.Add(SharedFresh + time.Millisecond)
	if good(a, at) {
		t.Error("A admits an attempt SharedFresh after B reached the limit")
	}
	reads := st.reads
	for i := range 50 {
		if good(a, at.Add(time.Duration(i)*time.Second)) {
			t.Fatal("A admits an attempt while the window at the limit runs")
		}
	}
	if st.reads != reads {
		t.Errorf("refusals at the limit read the store %d more times, want 0", st.reads-reads)
	}
	if !good(a, now.Add(time.Minute+time.Second)) {
		t.Error("A refuses after the window")
	}
}

// TestSharedKeyWithFailuresReadEachTime: once a key has failures, every
// attempt reads the store, so guesses alternated between gateways faster
// than SharedFresh are still throttled as one.
func TestSharedKeyWithFailuresReadEachTime(t *testing.T) {
	ctx, now := context.Background(), sharedT0
	a, b, _ := twoGateways(4, "invite.ip")
	for i := range 4 {
		l := []*Limiter{a, b}[i%2]
		r, ok, _ := l.ReserveShared(ctx, "192.0.2.9", now.Add(time.Duration(i)*time.Millisecond))
		if !ok {
			t.Fatalf("guess %d refused before the limit", i+1)
		}
		r.Fail(ctx, now)
	}
	for _, l := range []*Limiter{a, b} {
		if _, ok, _ := l.ReserveShared(ctx, "192.0.2.9", now.Add(5*time.Millisecond)); ok {
			t.Errorf("a fifth guess admitted within a few milliseconds")
		}
	}
}

// TestSucceededKeysForgotten: a key whose attempts all succeeded is not
// kept (a used ticket's id is never tried again), and the keys remembered
// as clean are bounded.
func TestSucceededKeysForgotten(t *testing.T) {
	ctx, now := context.Background(), sharedT0
	l, _, _ := twoGateways(5, "ticket.uuid")
	for i := range 3 * maxClean {
		r, ok, _ := l.ReserveShared(ctx, fmt.Sprintf("ticket-%d", i), now)
		if !ok {
			t.Fatal("refused")
		}
		r.Release()
	}
	if len(l.keys) != 0 || len(l.clean) > maxClean {
		t.Errorf("%d buckets and %d clean keys kept after only good attempts", len(l.keys), len(l.clean))
	}
	r, _, _ := l.ReserveShared(ctx, "bad", now)
	r.Fail(ctx, now)
	if len(l.keys) != 1 {
		t.Errorf("a failed key was not kept")
	}
}
