package session_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func setup(t testing.TB, cfg session.Config) (*session.Manager, *clock, store.Store, *store.User) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &store.User{Email: "ada@example.com", Active: true}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return session.New(st, []byte("0123456789abcdef0123456789abcdef"), cfg, session.NewCache(0), c.now), c, st, u
}

func TestLifetimes(t *testing.T) {
	cfg := session.Config{Idle: 2 * time.Hour, Lifetime: 24 * time.Hour, TouchEvery: time.Minute}
	cases := []struct {
		name   string
		steps  []time.Duration // activity at these offsets from start
		at     time.Duration   // then check at this offset
		reason string
	}{
		{"fresh", nil, 0, ""},
		{"one second before idle", nil, 2*time.Hour - time.Second, ""},
		{"at idle", nil, 2 * time.Hour, session.ReasonIdle},
		{"activity moves idle", []time.Duration{90 * time.Minute}, 3 * time.Hour, ""},
		{"one second before lifetime", []time.Duration{2 * time.Hour * 0, 100 * time.Minute, 200 * time.Minute, 300 * time.Minute, 400 * time.Minute, 500 * time.Minute, 600 * time.Minute, 700 * time.Minute, 800 * time.Minute, 900 * time.Minute, 1000 * time.Minute, 1100 * time.Minute, 1200 * time.Minute, 1300 * time.Minute, 1400 * time.Minute}, 24*time.Hour - time.Second, ""},
		{"at lifetime despite activity", []time.Duration{100 * time.Minute, 200 * time.Minute, 300 * time.Minute, 400 * time.Minute, 500 * time.Minute, 600 * time.Minute, 700 * time.Minute, 800 * time.Minute, 900 * time.Minute, 1000 * time.Minute, 1100 * time.Minute, 1200 * time.Minute, 1300 * time.Minute, 1400 * time.Minute}, 24 * time.Hour, session.ReasonExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, clk, _, u := setup(t, cfg)
			start := clk.t
			token, _, err := m.Start(context.Background(), u.ID, "test", "", "192.0.2.1", "ua")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.steps {
				clk.t = start.Add(s)
				if _, reason, err := m.Check(context.Background(), token); err != nil || reason != "" {
					t.Fatalf("activity at %v: reason %q err %v", s, reason, err)
				}
			}
			clk.t = start.Add(c.at)
			su, reason, err := m.Check(context.Background(), token)
			if err != nil {
				t.Fatal(err)
			}
			if reason != c.reason {
				t.Fatalf("reason %q, want %q", reason, c.reason)
			}
			if c.reason == "" && su.UserID != u.ID {
				t.Errorf("session user %d, want %d", su.UserID, u.ID)
			}
			if c.reason != "" && su == nil {
				t.Error("refused session not returned for the audit record")
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	m, clk, st, u := setup(t, session.Config{})
	ctx := context.Background()
	token, s, err := m.Start(ctx, u.ID, "test", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, token, reason string
	}{
		{"missing", "", session.ReasonMissing},
		{"too short", "abc", session.ReasonMalformed},
		{"bad characters", token[:42] + "=", session.ReasonMalformed},
		{"huge", string(make([]byte, 1<<16)), session.ReasonMalformed},
		{"unknown", "A" + token[1:], session.ReasonUnknown},
	}
	if token[0] == 'A' {
		cases[4].token = "B" + token[1:]
	}
	for _, c := range cases {
		if _, reason, err := m.Check(ctx, c.token); err != nil || reason != c.reason {
			t.Errorf("%s: reason %q err %v, want %q", c.name, reason, err, c.reason)
		}
	}
	if err := st.SetUserActive(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := m.Check(ctx, token); reason != session.ReasonInactiveUser {
		t.Errorf("inactive user: reason %q", reason)
	}
	if err := st.SetUserActive(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := m.End(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := m.Check(ctx, token); reason != session.ReasonRevoked {
		t.Errorf("ended: reason %q", reason)
	}
	if err := m.End(ctx, "no-such-session"); err != nil {
		t.Errorf("ending an unknown session: %v", err)
	}
	_ = clk
}

func TestOnlyHashIsStored(t *testing.T) {
	m, _, st, u := setup(t, session.Config{})
	token, s, err := m.Start(context.Background(), u.ID, "test", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ss, err := st.Sessions(context.Background(), store.SessionFilter{UserID: u.ID})
	if err != nil || len(ss) != 1 {
		t.Fatal(ss, err)
	}
	if string(ss[0].TokenHash) == token || ss[0].ID == token || s.ID == token {
		t.Error("the cookie value is stored or used as the public id")
	}
	// A different secret cannot use the same cookie.
	other := session.New(st, []byte("another-secret-another-secret-00"), session.Config{}, nil, nil)
	if _, reason, _ := other.Check(context.Background(), token); reason != session.ReasonUnknown {
		t.Errorf("cookie valid under another secret: reason %q", reason)
	}
}

func TestActivityIsWrittenAtMostEveryTouchInterval(t *testing.T) {
	m, clk, st, u := setup(t, session.Config{Idle: time.Hour, TouchEvery: 5 * time.Minute})
	start := clk.t
	token, s, _ := m.Start(context.Background(), u.ID, "test", "", "", "")
	lastSeen := func() time.Time {
		ss, _ := st.Sessions(context.Background(), store.SessionFilter{UserID: u.ID})
		return ss[0].LastSeenAt
	}
	clk.t = start.Add(4 * time.Minute)
	m.Check(context.Background(), token)
	if !lastSeen().Equal(s.LastSeenAt) {
		t.Errorf("activity written before the touch interval")
	}
	clk.t = start.Add(6 * time.Minute)
	m.Check(context.Background(), token)
	if !lastSeen().Equal(clk.t) {
		t.Errorf("last seen %v, want %v", lastSeen(), clk.t)
	}
}

func FuzzCheckToken(f *testing.F) {
	m, _, _, u := setup(f, session.Config{})
	token, _, err := m.Start(context.Background(), u.ID, "test", "", "", "")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", token, token + "x", "A" + token[1:], "%%%", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		su, reason, err := m.Check(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if (reason == "") != (s == token) {
			t.Fatalf("token %q: reason %q", s, reason)
		}
		if reason == "" && su.UserID != u.ID {
			t.Fatal("wrong user")
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	m, _, _, u := setup(b, session.Config{})
	token, _, err := m.Start(context.Background(), u.ID, "test", "", "", "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, reason, err := m.Check(context.Background(), token); reason != "" || err != nil {
			b.Fatal(reason, err)
		}
	}
}

func TestCacheSeesRevocations(t *testing.T) {
	m, clk, st, u := setup(t, session.Config{})
	ctx := context.Background()
	token, s, _ := m.Start(ctx, u.ID, "test", "", "", "")
	if _, reason, _ := m.Check(ctx, token); reason != "" {
		t.Fatal(reason)
	}
	// Another process revokes: the cached session is used until the TTL.
	if err := st.RevokeSession(ctx, s.ID, clk.t); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := m.Check(ctx, token); reason != "" {
		t.Fatalf("within the cache TTL: reason %q", reason)
	}
	clk.t = clk.t.Add(session.DefaultCacheTTL)
	if _, reason, _ := m.Check(ctx, token); reason != session.ReasonRevoked {
		t.Fatalf("after the cache TTL: reason %q, want revoked", reason)
	}

	// Through the Manager, revocation holds at once.
	token2, s2, _ := m.Start(ctx, u.ID, "test", "", "", "")
	m.Check(ctx, token2)
	if err := m.End(ctx, s2.ID); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := m.Check(ctx, token2); reason != session.ReasonRevoked {
		t.Fatalf("after End: reason %q", reason)
	}
}

func TestCacheForgetUser(t *testing.T) {
	cache := session.NewCache(time.Hour)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	u := &store.User{Email: "x@example.com", Active: true}
	st.CreateUser(ctx, u)
	m1 := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{}, cache, nil)
	m2 := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{Idle: time.Hour}, cache, nil)
	token, _, _ := m1.Start(ctx, u.ID, "test", "", "", "")
	m1.Check(ctx, token)
	st.SetUserActive(ctx, u.ID, false)
	cache.ForgetUser(u.ID)
	// A Manager of another route sharing the cache sees it too.
	if _, reason, _ := m2.Check(ctx, token); reason != session.ReasonInactiveUser {
		t.Fatalf("after ForgetUser: reason %q", reason)
	}
}

// A session belongs to the site it was started on: the same store, secret
// and shared cache on another site refuse its cookie, and say nothing of it.
func TestSessionIsRefusedOnAnotherSite(t *testing.T) {
	a, _, st, u := setup(t, session.Config{Site: "a.example"})
	cache := session.NewCache(0)
	a = session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{Site: "a.example"}, cache, nil)
	b := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{Site: "b.example"}, cache, nil)
	token, s, err := a.Start(context.Background(), u.ID, "test", "", "192.0.2.1", "ua")
	if err != nil {
		t.Fatal(err)
	}
	if s.Site != "a.example" {
		t.Fatalf("session started with site %q", s.Site)
	}
	for i := 0; i < 2; i++ { // the second time from the shared cache
		if su, reason, err := a.Check(context.Background(), token); err != nil || reason != "" || su == nil {
			t.Fatalf("on its own site: %v %q %v", su, reason, err)
		}
		if su, reason, err := b.Check(context.Background(), token); err != nil || reason != session.ReasonWrongSite || su != nil {
			t.Fatalf("on another site: %+v %q %v; want nil, wrong_site", su, reason, err)
		}
	}
}
