package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// testSites checks that the rows that belong to a site keep it, and that a
// link whose row names one site cannot be used on another.
func testSites(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "everywhere@example.org")
	a := newSession(u, "on-a", at(0))
	a.Site = "a.example"
	b := newSession(u, "on-b", at(0))
	b.Site = "b.example"
	for _, sess := range []*store.Session{a, b} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatalf("CreateSession(%s): %v", sess.ID, err)
		}
	}
	got, err := s.SessionByTokenHash(ctx, a.TokenHash)
	if err != nil || got.Site != "a.example" {
		t.Fatalf("SessionByTokenHash(a) = %+v, %v; want site a.example", got, err)
	}
	list, err := s.Sessions(ctx, store.SessionFilter{Site: "b.example"})
	if err != nil || len(list) != 1 || list[0].ID != "on-b" {
		t.Errorf("Sessions(site b) = %+v, %v; want only on-b", list, err)
	}

	exp := at(time.Hour)
	if err := s.CreateLink(ctx, &store.Link{JTI: "site-a-link", Site: "a.example", UserID: u.ID, Target: "a.example/x", Mode: "request", MaxUses: 5, ExpiresAt: exp}); err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	if _, err := s.UseLink(ctx, &store.LinkUse{JTI: "site-a-link", Site: "b.example", UserID: u.ID, MaxUses: 5, At: at(time.Minute)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UseLink on another site = %v, want ErrConflict", err)
	}
	if n, err := s.UseLink(ctx, &store.LinkUse{JTI: "site-a-link", Site: "a.example", UserID: u.ID, MaxUses: 5, At: at(time.Minute)}); err != nil || n != 1 {
		t.Errorf("UseLink on its site = %d, %v; want 1 (the refused use counted nothing)", n, err)
	}
	// A link minted offline takes the site of its first use.
	if _, err := s.UseLink(ctx, &store.LinkUse{JTI: "offline", Site: "b.example", UserID: u.ID, Target: "b.example/y", Mode: "request", MaxUses: 0, ExpiresAt: exp, At: at(time.Minute)}); err != nil {
		t.Fatalf("UseLink offline: %v", err)
	}
	if l, err := s.Link(ctx, "offline"); err != nil || l.Site != "b.example" {
		t.Errorf("Link(offline) = %+v, %v; want site b.example", l, err)
	}
	if _, err := s.UseLink(ctx, &store.LinkUse{JTI: "offline", Site: "a.example", UserID: u.ID, Target: "b.example/y", Mode: "request", ExpiresAt: exp, At: at(time.Minute)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UseLink of b's offline link on a = %v, want ErrConflict", err)
	}
}
