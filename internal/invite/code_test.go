package invite_test

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/store"
)

func TestGenerateEveryLength(t *testing.T) {
	for n := invite.MinLength; n <= invite.MaxLength; n++ {
		seen := map[string]bool{}
		for range 50 {
			code, err := invite.Generate(n)
			if err != nil {
				t.Fatalf("length %d: %v", n, err)
			}
			if len(code) != n {
				t.Fatalf("length %d: got %q", n, code)
			}
			for i, c := range code {
				letter := i < n-3
				if letter && (c < 'A' || c > 'Z') || !letter && (c < '0' || c > '9') {
					t.Fatalf("length %d: %q is not letters then three digits", n, code)
				}
			}
			if norm, ok := invite.Normalize(code); !ok || norm != code {
				t.Fatalf("generated code %q does not normalise to itself", code)
			}
			seen[code] = true
		}
		if n >= 9 && len(seen) < 50 {
			t.Errorf("length %d: only %d distinct codes in 50", n, len(seen))
		}
	}
}

func TestLengthLimits(t *testing.T) {
	for _, n := range []int{-1, 0, 5, 31, 100} {
		if err := invite.CheckLength(n); err == nil {
			t.Errorf("length %d accepted", n)
		} else if !strings.Contains(err.Error(), "6 to 30") {
			t.Errorf("length %d: unclear error %q", n, err)
		}
		if _, err := invite.Generate(n); err == nil {
			t.Errorf("Generate(%d) succeeded", n)
		}
	}
	for _, n := range []int{6, 9, 30} {
		if err := invite.CheckLength(n); err != nil {
			t.Errorf("length %d refused: %v", n, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"ABCXYZ123", "ABCXYZ123", true},
		{"  abcxyz123\n", "ABCXYZ123", true},
		{"AbCxYz123", "ABCXYZ123", true},
		{"\tABC123 ", "ABC123", true},
		{"ABC12", "", false},
		{"AB1234", "", false},
		{"ABCXYZ12A", "", false},
		{"ABC XYZ123", "", false},
		{"ÄBCXYZ123", "", false},
		{"", "", false},
		{strings.Repeat("A", 28) + "123", "", false},
		{strings.Repeat("A", 27) + "123", strings.Repeat("A", 27) + "123", true},
		{"ABC-XYZ-123", "", false},
	}
	for _, c := range cases {
		got, ok := invite.Normalize(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"ABCXYZ123", " abc123 ", "ABC12", "", "ÿÿÿ123", strings.Repeat("z", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, ok := invite.Normalize(s)
		if !ok {
			if code != "" {
				t.Fatalf("refused %q but returned %q", s, code)
			}
			return
		}
		if len(code) < invite.MinLength || len(code) > invite.MaxLength {
			t.Fatalf("%q normalised to %q of bad length", s, code)
		}
		if again, ok := invite.Normalize(code); !ok || again != code {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, code, again)
		}
		if !strings.EqualFold(strings.TrimSpace(s), code) {
			t.Fatalf("%q normalised to unrelated %q", s, code)
		}
	})
}

func TestHasherIsKeyed(t *testing.T) {
	a := invite.NewHasher([]byte("secret-a-secret-a-secret-a-secret-a"))
	b := invite.NewHasher([]byte("secret-b-secret-b-secret-b-secret-b"))
	if string(a.Hash("ABCXYZ123")) == string(b.Hash("ABCXYZ123")) {
		t.Error("the code hash does not depend on the secret")
	}
	if string(a.Hash("ABCXYZ123")) != string(a.Hash("ABCXYZ123")) {
		t.Error("hash is not deterministic")
	}
}

func TestRules(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	r := invite.Rules{UsageWindow: 14 * day, Expiry: 30 * day}
	unused := store.Invite{Site: "app.example.com", CreatedAt: created}
	used := unused
	used.FirstUsedAt = created.Add(2 * day)
	revoked := used
	revoked.RevokedAt = created.Add(3 * day)
	cases := []struct {
		name   string
		inv    store.Invite
		rules  invite.Rules
		host   string
		at     time.Time
		reason string
		first  bool
	}{
		{"first use", unused, r, "app.example.com", created.Add(day), "", true},
		{"site name in another case", unused, r, "App.Example.com", created.Add(day), "", true},
		{"a Host header is not a site name", unused, r, "app.example.com:8443", created.Add(day), invite.ReasonWrongSite, false},
		{"window: one second before", unused, r, "app.example.com", created.Add(14*day - time.Second), "", true},
		{"window: at the end", unused, r, "app.example.com", created.Add(14 * day), invite.ReasonWindowExpired, false},
		{"window: one second after", unused, r, "app.example.com", created.Add(14*day + time.Second), invite.ReasonWindowExpired, false},
		{"later use", used, r, "app.example.com", used.FirstUsedAt.Add(day), "", false},
		{"expiry: one second before", used, r, "app.example.com", used.FirstUsedAt.Add(30*day - time.Second), "", false},
		{"expiry: one second after", used, r, "app.example.com", used.FirstUsedAt.Add(30*day + time.Second), invite.ReasonExpired, false},
		{"later use after the window is fine", used, r, "app.example.com", created.Add(20 * day), "", false},
		{"expiry 0: first use", unused, invite.Rules{UsageWindow: 14 * day}, "app.example.com", created.Add(day), "", true},
		{"expiry 0: second use", used, invite.Rules{UsageWindow: 14 * day}, "app.example.com", used.FirstUsedAt.Add(time.Second), invite.ReasonExpired, false},
		{"wrong site", unused, r, "other.example.com", created.Add(day), invite.ReasonWrongSite, false},
		{"wrong site, subdomain", unused, r, "evil.app.example.com", created.Add(day), invite.ReasonWrongSite, false},
		{"revoked", revoked, r, "app.example.com", created.Add(4 * day), invite.ReasonRevoked, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reason, first := c.rules.Check(&c.inv, c.host, c.at)
			if reason != c.reason || first != c.first {
				t.Errorf("Check = %q, first=%v; want %q, first=%v", reason, first, c.reason, c.first)
			}
		})
	}
}

func TestSiteOf(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM":      "example.com",
		"example.com:8080": "example.com",
		"example.com.":     "example.com",
		"[::1]:8080":       "::1",
		"localhost":        "localhost",
	} {
		if got := invite.SiteOf(in); got != want {
			t.Errorf("SiteOf(%q) = %q, want %q", in, got, want)
		}
	}
}
