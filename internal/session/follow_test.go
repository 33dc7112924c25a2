package session_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// until polls cond for up to five seconds; it measures nothing, it only
// waits for another goroutine.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("waited 5s for %s", what)
}

// Two gateways on one store, each with its own cache: a session revoked or
// a user deactivated through one (or the CLI, straight in the store) is
// refused by the other once it has read the fan-out, although its cache
// would otherwise trust the session for ten minutes.
func TestFollowSeesOtherGatewaysRevocations(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	secret := []byte("0123456789abcdef0123456789abcdef")
	u := &store.User{Email: "f@example.com", Active: true}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	other := &store.User{Email: "g@example.com", Active: true}
	if err := st.CreateUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	cacheA, cacheB := session.NewCache(0), session.NewCache(0)
	go cacheB.Follow(ctx, st, session.FollowConfig{Poll: 10 * time.Millisecond})
	a := session.New(st, secret, session.Config{Site: "s"}, cacheA, nil)
	b := session.New(st, secret, session.Config{Site: "s"}, cacheB, nil)
	token, s1, err := a.Start(ctx, u.ID, "test", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	token2, _, _ := a.Start(ctx, u.ID, "test", "", "", "")
	token3, _, _ := a.Start(ctx, other.ID, "test", "", "", "")
	until(t, "B to follow", func() bool { _, r, _ := b.Check(ctx, token); return r == "" })
	for _, tok := range []string{token, token2, token3} {
		if _, r, err := b.Check(ctx, tok); r != "" || err != nil {
			t.Fatalf("B refuses a live session: %q %v", r, err)
		}
	}
	if cacheB.Len() != 3 {
		t.Fatalf("B caches %d sessions, want 3", cacheB.Len())
	}

	if err := a.End(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	until(t, "B to see the revocation", func() bool { _, r, _ := b.Check(ctx, token); return r == session.ReasonRevoked })

	// Deactivation straight in the store, as the CLI does it.
	if err := st.SetUserActive(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	until(t, "B to see the deactivation", func() bool { _, r, _ := b.Check(ctx, token2); return r == session.ReasonInactiveUser })
	// Someone else's session stays cached and accepted.
	if _, r, err := b.Check(ctx, token3); r != "" || err != nil {
		t.Fatalf("another user's session: %q %v", r, err)
	}
}

// flaky is a store whose fan-out can fail, and which counts lookups.
type flaky struct {
	store.Store
	down    atomic.Bool
	lookups atomic.Int32
}

func (f *flaky) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if f.down.Load() {
		return nil, errors.New("store unreachable")
	}
	return f.Store.ChangesSince(ctx, after, limit)
}

func (f *flaky) SessionByTokenHash(ctx context.Context, h []byte) (*store.SessionUser, error) {
	f.lookups.Add(1)
	return f.Store.SessionByTokenHash(ctx, h)
}

// A cache that cannot read the fan-out stops answering from memory: it
// might miss a revocation, so every request asks the store again.
func TestFollowFailsClosedWhenTheFanOutIsUnreadable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &flaky{Store: st}
	u := &store.User{Email: "f@example.com", Active: true}
	st.CreateUser(ctx, u)
	cache := session.NewCache(0)
	// StaleAfter is far above the poll, so that a loaded machine (the race
	// detector on two cores) delaying a poll cannot make the cache stale
	// while the test expects it to answer from memory.
	go cache.Follow(ctx, f, session.FollowConfig{Poll: 10 * time.Millisecond, StaleAfter: time.Second})
	m := session.New(f, []byte("0123456789abcdef0123456789abcdef"), session.Config{}, cache, nil)
	token, _, _ := m.Start(ctx, u.ID, "test", "", "", "")
	until(t, "the cache to follow", func() bool { m.Check(ctx, token); return cache.Len() == 1 })
	n := f.lookups.Load()
	for range 20 {
		m.Check(ctx, token)
	}
	if got := f.lookups.Load() - n; got != 0 {
		t.Fatalf("a followed cache asked the store %d times", got)
	}
	f.down.Store(true)
	until(t, "the cache to go stale", func() bool {
		n := f.lookups.Load()
		m.Check(ctx, token)
		return f.lookups.Load() > n
	})
	f.down.Store(false)
	until(t, "the cache to recover", func() bool {
		m.Check(ctx, token)
		n := f.lookups.Load()
		m.Check(ctx, token)
		return f.lookups.Load() == n
	})
}
