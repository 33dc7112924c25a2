package invite_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/store"
)

type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (c *countingStore) InviteByCodeHash(ctx context.Context, h []byte) (*store.Invite, error) {
	c.lookups.Add(1)
	return c.Store.InviteByCodeHash(ctx, h)
}

// A code made before a rotation still logs in after it; one made after is
// hashed under the new secret only; an unknown code costs one lookup per
// secret; once the old secret is retired its codes are unknown.
func TestPreviousSecrets(t *testing.T) {
	ctx := context.Background()
	rules := invite.DefaultRules()
	old, st, clk := newService(t, rules)
	newSecret := []byte("the-new-secret-0123456789abcdef-1")
	oldCode, err := old.Create(ctx, &store.Invite{Site: "app.example.com", Email: "old@example.com"}, 9)
	if err != nil {
		t.Fatal(err)
	}
	keptCode, err := old.Create(ctx, &store.Invite{Site: "app.example.com", Email: "kept@example.com"}, 9)
	if err != nil {
		t.Fatal(err)
	}

	cs := &countingStore{Store: st}
	rotated := invite.NewService(cs, newSecret, rules, clk.now, secret)
	if res, err := rotated.Redeem(ctx, attempt(oldCode)); err != nil || res.Reason != "" || res.User == nil {
		t.Fatalf("a code made before the rotation: %+v, %v", res, err)
	}
	newInv := &store.Invite{Site: "app.example.com", Email: "new@example.com"}
	newCode, err := rotated.Create(ctx, newInv, 9)
	if err != nil {
		t.Fatal(err)
	}
	if string(newInv.CodeHash) != string(invite.NewHasher(newSecret).Hash(newCode)) {
		t.Error("a new code is not hashed under the new secret")
	}
	if res, _ := old.Redeem(ctx, attempt(newCode)); res.Reason != invite.ReasonUnknown {
		t.Errorf("the new code under the old secret alone: %q, want %q", res.Reason, invite.ReasonUnknown)
	}
	cs.lookups.Store(0)
	if res, _ := rotated.Redeem(ctx, attempt("QQQQQQ999")); res.Reason != invite.ReasonUnknown {
		t.Errorf("an unknown code: %q", res.Reason)
	}
	if n := cs.lookups.Load(); n != 2 {
		t.Errorf("an unknown code took %d lookups, want one per secret (2)", n)
	}

	retired := invite.NewService(st, newSecret, rules, clk.now)
	if res, _ := retired.Redeem(ctx, attempt(keptCode)); res.Reason != invite.ReasonUnknown {
		t.Errorf("an old code after retiring: %q, want %q", res.Reason, invite.ReasonUnknown)
	}
	if res, err := retired.Redeem(ctx, attempt(newCode)); err != nil || res.Reason != "" {
		t.Errorf("the new code after retiring: %q, %v", res.Reason, err)
	}
}
