package session_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// countingStore counts session lookups.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (c *countingStore) SessionByTokenHash(ctx context.Context, h []byte) (*store.SessionUser, error) {
	c.lookups.Add(1)
	return c.Store.SessionByTokenHash(ctx, h)
}

// After a rotation a session started under the previous secret is still
// accepted, and then served from the cache like any other; a new one is
// hashed under the new secret only; an unknown cookie costs one lookup per
// secret; without the previous secret the old session is unknown.
func TestPreviousSecrets(t *testing.T) {
	ctx := context.Background()
	_, clk, st, u := setup(t, session.Config{})
	oldSecret := []byte("the-old-secret-0123456789abcdef-0")
	newSecret := []byte("the-new-secret-0123456789abcdef-1")
	other := []byte("another-secret-0123456789abcdef-2")
	cfg := session.Config{Site: "example.com"}
	oldToken, _, err := session.New(st, oldSecret, cfg, nil, clk.now).Start(ctx, u.ID, "test", "", "192.0.2.1", "ua")
	if err != nil {
		t.Fatal(err)
	}

	cs := &countingStore{Store: st}
	rotated := session.New(cs, newSecret, cfg, session.NewCache(0), clk.now, other, oldSecret)
	if su, reason, err := rotated.Check(ctx, oldToken); err != nil || reason != "" || su.UserID != u.ID {
		t.Fatalf("an old session after the rotation: %q, %v", reason, err)
	}
	if n := cs.lookups.Load(); n != 3 {
		t.Errorf("the old session took %d lookups, want 3 (new secret, other, old)", n)
	}
	cs.lookups.Store(0)
	if _, reason, err := rotated.Check(ctx, oldToken); err != nil || reason != "" {
		t.Fatalf("the old session again: %q, %v", reason, err)
	}
	if n := cs.lookups.Load(); n != 0 {
		t.Errorf("the old session's second request took %d lookups, want it from the cache", n)
	}

	newToken, s, err := rotated.Start(ctx, u.ID, "test", "", "192.0.2.1", "ua")
	if err != nil {
		t.Fatal(err)
	}
	if string(s.TokenHash) != string(session.New(st, newSecret, cfg, nil, clk.now).Hash(newToken)) {
		t.Error("a new session is not hashed under the new secret")
	}
	if _, reason, _ := session.New(st, oldSecret, cfg, nil, clk.now).Check(ctx, newToken); reason != session.ReasonUnknown {
		t.Errorf("the new session under the old secret alone: %q, want %q", reason, session.ReasonUnknown)
	}

	cs.lookups.Store(0)
	if _, reason, _ := rotated.Check(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); reason != session.ReasonUnknown {
		t.Errorf("an unknown cookie: %q", reason)
	}
	if n := cs.lookups.Load(); n != 3 {
		t.Errorf("an unknown cookie took %d lookups, want one per secret (3)", n)
	}

	// Retired: the old session is unknown, the new one works.
	retired := session.New(st, newSecret, cfg, session.NewCache(0), clk.now)
	if _, reason, _ := retired.Check(ctx, oldToken); reason != session.ReasonUnknown {
		t.Errorf("the old session after retiring: %q, want %q", reason, session.ReasonUnknown)
	}
	if _, reason, err := retired.Check(ctx, newToken); err != nil || reason != "" {
		t.Errorf("the new session after retiring: %q, %v", reason, err)
	}
}
