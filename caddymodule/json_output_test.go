package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// jsonTime is how every time is written: RFC 3339, UTC, milliseconds.
var jsonTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// checkRecords asserts that every record of a --json list has the same keys,
// whatever it holds, and that every time is written one way.
func checkRecords(t *testing.T, name, out string, atLeast int) {
	t.Helper()
	var recs []map[string]any
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Errorf("%s: not a JSON list: %v\n%s", name, err, out)
		return
	}
	if len(recs) < atLeast {
		t.Errorf("%s: %d records, want at least %d to compare\n%s", name, len(recs), atLeast, out)
		return
	}
	keysOf := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	first := keysOf(recs[0])
	for i, r := range recs {
		if ks := keysOf(r); !slices.Equal(ks, first) {
			t.Errorf("%s: record %d has keys %v, record 0 %v", name, i, ks, first)
		}
		for k, v := range r {
			if strings.HasSuffix(k, "_at") || strings.HasSuffix(k, "_before") || k == "time" {
				if s, ok := v.(string); v != nil && (!ok || !jsonTime.MatchString(s)) {
					t.Errorf("%s: record %d %s = %v, want null or a UTC time with milliseconds", name, i, k, v)
				}
			}
			if (k == "ip" || strings.HasSuffix(k, "_ip")) && !strings.HasSuffix(k, "client_ip") {
				t.Errorf("%s: key %q: an IP address is called client_ip", name, k)
			}
		}
	}
}

// TestJSONListsKeepTheirKeys: every list a script reads has records of one
// shape — a used and an unused invite, a revoked and a live session, a sent
// and a failed mail have the same keys — and times of one format.
func TestJSONListsKeepTheirKeys(t *testing.T) {
	be := &mailtest.Backend{}
	live := smtpOpts(mailtest.Serve(t, be, nil))
	live.handler = "invite\n\t\tlink\n\t\tticket louvre visit\n\t\ttickets {\n\t\t\talso session invite link\n\t\t}"
	g := startGateway(t, live)

	// Users, one with everything, one with nothing but an address.
	g.cli(live, "roles", "create", "staff", "--site", "127.0.0.1")
	g.cli(live, "users", "add", "--email", "full@example.com", "--name", "Full", "--phone", "+1 555", "--site", "127.0.0.1", "--role", "staff")
	g.cli(live, "users", "add", "--email", "bare@example.com")
	// Invites: one used, one revoked, one fresh and mailed.
	used := g.createInvite(live, "used@example.com")
	if r := g.login(used.Code, "/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with a code: %d", r.StatusCode)
	}
	revoked := g.createInvite(live, "gone@example.com")
	g.cli(live, "invites", "revoke", fmt.Sprint(revoked.ID))
	g.cli(live, "invites", "create", "--email", "mailed@example.com", "--send")
	// A mail that fails: the relay is gone.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := live
	dead.global = strings.Replace(live.global, live.global[strings.Index(live.global, " ")+1:strings.Index(live.global, " {")], l.Addr().String(), 1)
	l.Close()
	g.load(dead)
	g.cliErr(dead, "invites", "create", "--email", "bounce@example.com", "--send")
	g.load(live)
	// Sessions: one revoked.
	u := g.user("sess@example.com")
	_, s1 := g.session(u, time.Now())
	g.session(u, time.Now())
	g.cli(live, "sessions", "revoke", s1.ID)
	// Links: one used, one not; tickets: one used, one not.
	ln := g.mintLink(live, "--user", "full@example.com", "--url", g.url+"/unsubscribe", "--max-uses", "1")
	g.mintLink(live, "--user", "full@example.com", "--url", g.url+"/other", "--mode", "login")
	g.send(http.MethodGet, ln.URL, "", nil).Body.Close()
	tk := g.createTickets(live, "--place", "louvre", "--purpose", "visit", "--count", "2")
	g.send(http.MethodGet, g.url+"/louvre?"+url.Values{"uuid": {tk[0].UUID}, "password": {tk[0].Password}}.Encode(), "", nil).Body.Close()
	// A refusal for the audit trail.
	g.get("/private", nil).Body.Close()
	g.waitAudit(store.AuditFilter{Outcome: "refused"}, 1)

	for _, c := range []struct {
		args    []string
		atLeast int
	}{
		{[]string{"users", "list"}, 3},
		{[]string{"roles", "list"}, 1},
		{[]string{"sessions", "list", "--all"}, 2},
		{[]string{"invites", "list"}, 4},
		{[]string{"links", "list"}, 2},
		{[]string{"tickets", "list"}, 2},
		{[]string{"audit", "list"}, 4},
		{[]string{"mail", "list"}, 2},
	} {
		out := g.cli(live, append(c.args, "--json")...)
		checkRecords(t, strings.Join(c.args, " "), out, c.atLeast)
	}

	// The states an invite list shows.
	var invs []struct {
		Email, State string
		ExpiresAt    *string `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(g.cli(live, "invites", "list", "--json")), &invs); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, inv := range invs {
		states[inv.Email] = inv.State
		if inv.ExpiresAt == nil {
			t.Errorf("invite of %s has no expires_at", inv.Email)
		}
	}
	if states["used@example.com"] != "active" || states["gone@example.com"] != "revoked" || states["mailed@example.com"] != "valid" {
		t.Errorf("invite states: %v", states)
	}

	// Every revocation answers in one shape.
	var rv []map[string]any
	for _, args := range [][]string{
		{"sessions", "revoke", "--user", "sess@example.com", "--all"},
		{"links", "revoke", ln.JTI},
		{"tickets", "revoke", tk[1].UUID},
		{"invites", "revoke", fmt.Sprint(used.ID)},
	} {
		var m map[string]any
		out := g.cli(live, append(args, "--json")...)
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v --json: %v\n%s", args, err, out)
		}
		rv = append(rv, m)
	}
	for i, m := range rv {
		if len(m) != 4 || m["what"] == nil || m["id"] == nil || m["count"] == nil || m["message"] == nil {
			t.Errorf("revoke answer %d: %v, want what, id, count, message", i, m)
		}
	}
}
