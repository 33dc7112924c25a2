package session

import (
	"context"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// countingRows is a rowReader that counts its reads; during calls to it
// runs, as another goroutine's revocation would.
type countingRows struct {
	users, links int
	during       func()
}

func (r *countingRows) User(_ context.Context, id int64) (*store.User, error) {
	r.users++
	if r.during != nil {
		r.during()
	}
	if id == 404 {
		return nil, store.ErrNotFound
	}
	return &store.User{ID: id, Active: true}, nil
}

func (r *countingRows) Link(_ context.Context, jti string) (*store.Link, error) {
	r.links++
	if r.during != nil {
		r.during()
	}
	if jti == "missing" {
		return nil, store.ErrNotFound
	}
	return &store.Link{JTI: jti}, nil
}

func TestCacheRows(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewCache(time.Minute)
	r := &countingRows{}
	read := func(what string, wantUsers, wantLinks int) {
		t.Helper()
		if r.users != wantUsers || r.links != wantLinks {
			t.Errorf("%s: %d user and %d link reads, want %d and %d", what, r.users, r.links, wantUsers, wantLinks)
		}
	}
	for range 3 {
		c.User(ctx, r, 7, now)
		c.Link(ctx, r, "L", now)
	}
	read("three look-ups each", 1, 1)
	c.ForgetUser(7)
	c.User(ctx, r, 7, now)
	c.Link(ctx, r, "L", now)
	read("after ForgetUser", 2, 1)
	c.ForgetLink("L")
	c.Link(ctx, r, "L", now)
	read("after ForgetLink", 2, 2)
	c.forgetMany(nil, map[int64]bool{7: true}, map[string]bool{"L": true})
	c.User(ctx, r, 7, now)
	c.Link(ctx, r, "L", now)
	read("after a batch of changes", 3, 3)
	c.User(ctx, r, 7, now.Add(time.Minute))
	read("after the TTL", 4, 3)

	// Not found is not remembered: a link minted offline gets its row on
	// its first use.
	for range 2 {
		if _, err := c.Link(ctx, r, "missing", now); err != store.ErrNotFound {
			t.Fatalf("missing link: %v", err)
		}
	}
	read("a missing link twice", 4, 5)

	// A revocation landing while a row is being read: the row read may be
	// from before it, so it is not kept.
	r.during = func() { c.ForgetLink("raced") }
	c.Link(ctx, r, "raced", now)
	r.during = nil
	c.Link(ctx, r, "raced", now)
	read("a read raced by a revocation, then another", 4, 7)

	// A cache that has lost sight of the store's changes does not answer.
	c.following.Store(true)
	c.staleAfter.Store(int64(time.Second))
	c.lastSync.Store(now.Add(-2 * time.Second).UnixNano())
	c.Link(ctx, r, "L", now)
	c.Link(ctx, r, "L", now)
	read("stale", 4, 9)
}

// TestCacheSessionPutAfterForget: a session read from the store before a
// revocation was applied is not put back by the read that began before it.
func TestCacheSessionPutAfterForget(t *testing.T) {
	c := NewCache(time.Minute)
	now := time.Now()
	gen := c.generation()
	c.ForgetSession("s1")
	c.put([]byte("hash"), &store.SessionUser{Session: store.Session{ID: "s1"}}, now, gen)
	if c.get([]byte("hash"), now) != nil {
		t.Error("a session read before its revocation was cached after it")
	}
	c.put([]byte("hash"), &store.SessionUser{Session: store.Session{ID: "s1"}}, now, c.generation())
	if c.get([]byte("hash"), now) == nil {
		t.Error("a session read after the last change was not cached")
	}
}

// TestCacheRowsBounded: users and links take a quarter of the bound each.
func TestCacheRowsBounded(t *testing.T) {
	c := NewSizedCache(time.Minute, 400)
	r := &countingRows{}
	now := time.Now()
	for i := range 1000 {
		c.User(t.Context(), r, int64(i+1), now)
		c.Link(t.Context(), r, string(rune('a'+i%26))+time.Duration(i).String(), now)
	}
	if len(c.users) > 100 || len(c.links) > 100 {
		t.Errorf("%d users and %d links held, bound 100 each", len(c.users), len(c.links))
	}
}
