package caddymodule_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
)

const (
	uaChromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaFirefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
)

// TestSessionsPage: through a real Caddy, a user signed in from two
// browsers sees both sessions with browser and system on
// /.latchkey/sessions, this one marked; "sign out all other sessions" ends
// the other and keeps this one; another user's session can be neither seen
// nor ended from it; a cross-site form is refused; ending this browser's
// own session signs it out.
func TestSessionsPage(t *testing.T) {
	r := startAtkRig(t, atkOpts{noSMTP: true})
	u := r.user(r.A.name, "two-browsers@example.com")
	m := session.New(r.st, r.secret, session.Config{Site: r.A.name}, nil, nil)
	start := func(u *store.User, ua, ip string) (string, *store.Session) {
		tok, s, err := m.Start(context.Background(), u.ID, "test", "", ip, ua)
		if err != nil {
			t.Fatal(err)
		}
		return tok, s
	}
	c1, s1 := start(u, uaChromeWindows, "192.0.2.1")
	c2, s2 := start(u, uaFirefoxLinux, "198.51.100.2")
	other := r.user(r.A.name, "someone-else@example.com")
	c3, s3 := start(other, uaFirefoxLinux, "203.0.113.3")
	cookie := func(c string) []string { return []string{"Cookie", "latchkey_session=" + c} }
	ok := func(c string) func() int {
		return func() int { return r.A.get(t, "/private", cookie(c)...).StatusCode }
	}

	page := r.A.get(t, "/.latchkey/sessions", cookie(c1)...)
	body := string(page.Body)
	if page.StatusCode != http.StatusOK {
		t.Fatalf("sessions page: %d", page.StatusCode)
	}
	for _, want := range []string{"two-browsers@example.com", "Chrome", "Windows", "Firefox", "Linux", "192.0.2.1", "198.51.100.2", s1.ID, s2.ID, "sign-out-others"} {
		if !strings.Contains(body, want) {
			t.Errorf("sessions page lacks %q", want)
		}
	}
	if strings.Count(body, "(this browser)") != 1 || strings.Contains(body, s3.ID) || strings.Contains(body, "203.0.113.3") {
		t.Errorf("sessions page marks %d current sessions, shows the other user's: %v", strings.Count(body, "(this browser)"), strings.Contains(body, s3.ID))
	}
	if cc := page.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("sessions page Cache-Control %q, want no-store", cc)
	}

	// Another user's session: not this user's to end.
	if resp := r.A.postForm(t, "/.latchkey/sessions", url.Values{"revoke": {s3.ID}}, cookie(c1)...); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ending another user's session: %d, want 404", resp.StatusCode)
	}
	if st := ok(c3)(); st != http.StatusOK {
		t.Errorf("the other user's session after: %d", st)
	}
	// A cross-site form.
	if resp := r.A.postForm(t, "/.latchkey/sessions", url.Values{"others": {"1"}}, append(cookie(c1), "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site")...); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site sign-out form: %d, want 403", resp.StatusCode)
	}
	if st := ok(c2)(); st != http.StatusOK {
		t.Fatalf("second browser after the refused form: %d", st)
	}

	resp := r.A.postForm(t, "/.latchkey/sessions", url.Values{"others": {"1"}}, append(cookie(c1), "Origin", r.A.origin, "Sec-Fetch-Site", "same-origin")...)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.latchkey/sessions" {
		t.Fatalf("sign out others: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	waitStatus(t, ok(c2), http.StatusUnauthorized)
	if st := ok(c1)(); st != http.StatusOK {
		t.Errorf("this browser after signing out the others: %d, want 200", st)
	}
	r.waitAudit(1, func(e store.AuditEvent) bool { return e.Reason == "signed_out_others" && e.UserID == u.ID })

	// This browser's own session: signed out here.
	resp = r.A.postForm(t, "/.latchkey/sessions", url.Values{"revoke": {s1.ID}}, cookie(c1)...)
	if c := resp.cookie("latchkey_session"); resp.StatusCode != http.StatusSeeOther || c == nil || c.MaxAge >= 0 {
		t.Errorf("ending this browser's session: %d, cookie %v; want 303 and the cookie cleared", resp.StatusCode, c)
	}
	waitStatus(t, ok(c1), http.StatusUnauthorized)
	if resp := r.A.get(t, "/.latchkey/sessions", cookie(c1)...); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("sessions page after signing out: %d, want 401", resp.StatusCode)
	}
}
