package invite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

func newService(t *testing.T, rules invite.Rules) (*invite.Service, store.Store, *clock) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "i.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	return invite.NewService(st, secret, rules, c.now), st, c
}

var sessions atomic.Int64

// attempt uses code with a session that would last a year.
func attempt(code string) invite.Attempt {
	n := fmt.Sprint(sessions.Add(1))
	s := &store.Session{ID: "s" + n, TokenHash: []byte("h" + n), ExpiresAt: time.Date(2027, 5, 1, 0, 0, 0, 0, time.UTC)}
	return invite.Attempt{Code: code, Site: "app.example.com", IP: "192.0.2.1", Session: s, Audit: &store.AuditEvent{}}
}

func TestRedeem(t *testing.T) {
	ctx := context.Background()
	svc, st, clk := newService(t, invite.Rules{UsageWindow: 14 * 24 * time.Hour, Expiry: 30 * 24 * time.Hour})
	inv := &store.Invite{Site: "App.Example.com", Email: "Ann@Example.com", Name: "Ann", Phone: "+1 555"}
	code, err := svc.Create(ctx, inv, 9)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Site != "app.example.com" {
		t.Errorf("site stored as %q", inv.Site)
	}

	if res, err := svc.Redeem(ctx, attempt("ZZZZZZ000")); err != nil || res.Reason != invite.ReasonUnknown {
		t.Fatalf("unknown code: %+v %v", res, err)
	}
	if res, _ := svc.Redeem(ctx, attempt("not a code")); res.Reason != invite.ReasonUnknown {
		t.Fatalf("malformed code: %+v", res)
	}

	clk.add(time.Hour)
	a := attempt(" " + code + " ")
	res, err := svc.Redeem(ctx, a)
	if err != nil || res.Reason != "" || !res.First || res.User == nil {
		t.Fatalf("first use: %+v %v", res, err)
	}
	u := res.User
	if u.Email != "ann@example.com" || u.Name != "Ann" || u.Site != "app.example.com" || u.LoginCount != 1 {
		t.Errorf("registered user %+v", u)
	}
	// The session ends with the code.
	if want := clk.now().Add(30 * 24 * time.Hour); !a.Session.ExpiresAt.Equal(want) {
		t.Errorf("session ends %v, want with the code at %v", a.Session.ExpiresAt, want)
	}
	if a.Audit.Reason != "registered" || a.Audit.Kind != invite.Kind || a.Audit.UserID != u.ID {
		t.Errorf("audit record %+v", a.Audit)
	}

	clk.add(29 * 24 * time.Hour)
	if res, _ := svc.Redeem(ctx, attempt(code)); res.Reason != "" || res.First || res.User.ID != u.ID {
		t.Fatalf("later use: %+v", res)
	}
	if err := st.SetUserActive(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if res, _ := svc.Redeem(ctx, attempt(code)); res.Reason != invite.ReasonInactiveUser {
		t.Fatalf("deactivated user: %+v", res)
	}
	st.SetUserActive(ctx, u.ID, true)
	clk.add(24 * time.Hour)
	if res, _ := svc.Redeem(ctx, attempt(code)); res.Reason != invite.ReasonExpired {
		t.Fatalf("after expiry: %+v", res)
	}
}

func TestRedeemRefusals(t *testing.T) {
	ctx := context.Background()
	svc, st, clk := newService(t, invite.Rules{UsageWindow: time.Hour})
	mk := func(email string) (string, *store.Invite) {
		inv := &store.Invite{Site: "app.example.com", Email: email}
		code, err := svc.Create(ctx, inv, 9)
		if err != nil {
			t.Fatal(err)
		}
		return code, inv
	}
	oneShot, _ := mk("one@example.com")
	late, _ := mk("late@example.com")
	revoked, revokedInv := mk("rev@example.com")
	elsewhere, _ := mk("away@example.com")
	inactive, _ := mk("off@example.com")
	st.RevokeInvite(ctx, revokedInv.ID, clk.now())
	off := &store.User{Site: "app.example.com", Email: "off@example.com"}
	if err := st.CreateUser(ctx, off); err != nil {
		t.Fatal(err)
	}
	st.SetUserActive(ctx, off.ID, false)

	if res, _ := svc.Redeem(ctx, attempt(oneShot)); res.Reason != "" || !res.First {
		t.Fatalf("one-shot first use: %+v", res)
	}
	if res, _ := svc.Redeem(ctx, attempt(oneShot)); res.Reason != invite.ReasonExpired {
		t.Errorf("one-shot second use: %+v", res)
	}
	if res, _ := svc.Redeem(ctx, attempt(revoked)); res.Reason != invite.ReasonRevoked {
		t.Errorf("revoked: %+v", res)
	}
	away := attempt(elsewhere)
	away.Site = "other.example.com"
	if res, _ := svc.Redeem(ctx, away); res.Reason != invite.ReasonWrongSite {
		t.Errorf("wrong site: %+v", res)
	}
	if res, _ := svc.Redeem(ctx, attempt(inactive)); res.Reason != invite.ReasonInactiveUser {
		t.Errorf("invite for a deactivated user: %+v", res)
	}
	clk.add(time.Hour - time.Second)
	if res, _ := svc.Redeem(ctx, attempt(elsewhere)); res.Reason != "" {
		t.Errorf("one second before the window closes: %+v", res)
	}
	clk.add(time.Second)
	if res, _ := svc.Redeem(ctx, attempt(late)); res.Reason != invite.ReasonWindowExpired {
		t.Errorf("at the end of the window: %+v", res)
	}
}

func TestConcurrentFirstUseRegistersOnce(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := newService(t, invite.DefaultRules())
	code, _ := svc.Create(ctx, &store.Invite{Site: "app.example.com", Email: "race@example.com"}, 9)
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts, ok := 0, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := svc.Redeem(ctx, attempt(code))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if res.Reason == "" {
				ok++
			}
			if res.First {
				firsts++
			}
		}()
	}
	wg.Wait()
	us, _ := st.Users(ctx)
	if firsts != 1 || ok != 16 || len(us) != 1 {
		t.Errorf("16 concurrent uses: %d registered, %d accepted, %d users; want 1, 16, 1", firsts, ok, len(us))
	}
}

// An invite made by staff on the site's page never signs in an account that
// exists, even one created after the invite; an operator's may.
func TestStaffInviteNeverHandsOverAnAccount(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := newService(t, invite.DefaultRules())
	staffMade := &store.Invite{Site: "app.example.com", Email: "later@example.com", CreatedBy: "user:7"}
	staffCode, err := svc.Create(ctx, staffMade, 9)
	if err != nil {
		t.Fatal(err)
	}
	operatorMade := &store.Invite{Site: "app.example.com", Email: "later@example.com", CreatedBy: "cli"}
	operatorCode, err := svc.Create(ctx, operatorMade, 9)
	if err != nil {
		t.Fatal(err)
	}
	owner := &store.User{Site: "app.example.com", Email: "later@example.com", Active: true}
	if err := st.CreateUser(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if res, err := svc.Redeem(ctx, attempt(staffCode)); err != nil || res.Reason != invite.ReasonExistingAccount || res.User != nil {
		t.Fatalf("staff code for an existing account: %+v, %v", res, err)
	}
	if inv, _ := st.Invite(ctx, staffMade.ID); inv.UseCount != 0 || inv.UserID != 0 {
		t.Errorf("the refused staff code was used: %+v", inv)
	}
	if res, err := svc.Redeem(ctx, attempt(operatorCode)); err != nil || res.Reason != "" || res.User.ID != owner.ID {
		t.Fatalf("operator code for an existing account: %+v, %v", res, err)
	}
}
