package throttle

import (
	"context"
	"sync"
	"testing"
	"time"
)

// memShared is a store's failure counts, shared by the limiters of several
// gateways in this test.
type memShared struct {
	mu   sync.Mutex
	rows map[string]struct {
		start time.Time
		n     int
	}
}

func (m *memShared) Failures(_ context.Context, key string, w time.Duration, now time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
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

// Two gateways on one store: wrong guesses alternated between them are
// throttled as one.
func TestSharedLimitersCountTogether(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &memShared{}
	a := New(10, time.Minute).Share(st, "invite.ip")
	b := New(10, time.Minute).Share(st, "invite.ip")
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
