package caddymodule_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestSessionTheftSignals: a session seen from a client it did not start in
// is audited once as session_moved; with `session { bind user_agent }` a
// cookie from another browser family ends the session (401
// possible_theft, for the thief and then the owner too), while a new
// version of the same browser does not; with `bind ip_prefix` a cookie
// from another /24 does, and one from the same /24 does not.
func TestSessionTheftSignals(t *testing.T) {
	cases := []struct {
		name, bind, startIP, startUA string
		fromUA                       string
		want                         int
	}{
		{"moved, not bound", "", "192.0.2.1", uaChromeWindows, uaFirefoxLinux, http.StatusOK},
		{"another browser", "user_agent", "127.0.0.1", uaChromeWindows, uaFirefoxLinux, http.StatusUnauthorized},
		{"same browser, new version", "user_agent", "127.0.0.1", uaChromeWindows,
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/132.0.0.0 Safari/537.36", http.StatusOK},
		{"another network", "ip_prefix", "203.0.113.7", uaChromeWindows, uaChromeWindows, http.StatusUnauthorized},
		{"same /24", "ip_prefix", "127.0.0.99", uaChromeWindows, uaChromeWindows, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			handler := "invite"
			if c.bind != "" {
				handler = "session {\n\t\t\tbind " + c.bind + "\n\t\t}"
			}
			g := startGateway(t, gwOpts{handler: handler})
			u := g.user("victim@example.com")
			m := session.New(g.st, g.secret, session.Config{Site: "127.0.0.1"}, nil, nil)
			tok, s, err := m.Start(context.Background(), u.ID, "test", "", c.startIP, c.startUA)
			if err != nil {
				t.Fatal(err)
			}
			hdr := func(ua string) map[string]string {
				return map[string]string{"Cookie": "latchkey_session=" + tok, "User-Agent": ua}
			}
			for range 3 {
				if resp := g.get("/page", hdr(c.fromUA)); resp.StatusCode != c.want {
					t.Fatalf("from the other client: %d, want %d", resp.StatusCode, c.want)
				}
			}
			if c.want == http.StatusUnauthorized {
				// Ended: the owner is signed out too, and must sign in again.
				if resp := g.get("/page", hdr(c.startUA)); resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("the owner after the theft signal: %d, want 401", resp.StatusCode)
				}
				evs := g.waitAudit(store.AuditFilter{Reason: "possible_theft"}, 1)
				if evs[0].SessionID != s.ID {
					t.Errorf("possible_theft recorded for session %q, want %q", evs[0].SessionID, s.ID)
				}
				return
			}
			// The three requests are one record: the first from the new client.
			evs := g.waitAudit(store.AuditFilter{SessionID: s.ID, Outcome: store.OutcomeAccepted}, 1)
			if len(evs) != 1 || evs[0].Reason != "session_moved" {
				t.Errorf("records of the moved session: %+v, want one session_moved", evs)
			}
		})
	}
}
