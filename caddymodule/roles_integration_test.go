package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestRequireRole: through a real Caddy with three sites on one store, a
// route with `require role staff` admits a user holding staff on its site
// and refuses (403, audited missing_role) a user without it, a user whose
// staff role is on another site, and a ticket-less request; the upstream
// gets X-User-Roles (and, with `forward email name`, X-User-Email and
// X-User-Name), never a client's copy; a role taken away or granted with
// the CLI holds within a second.
func TestRequireRole(t *testing.T) {
	r := startAtkRig(t, atkOpts{noSMTP: true, siteExtra: func(s *atkSite) string {
		return fmt.Sprintf(`handle /staff/* {
		latchkey {
			require role staff admin
			forward email name
		}
		reverse_proxy %s
	}`, strings.TrimPrefix(s.up.URL, "http://"))
	}})

	r.cli("roles", "create", "staff", "--site", r.A.name, "--description", "Back office")
	r.cli("roles", "create", "staff", "--site", r.B.name)
	staff := &store.User{Site: r.A.name, Email: "ada@example.com", Name: "Ada Lovelace\r\nX-Evil: 1", Active: true}
	if err := r.st.CreateUser(t.Context(), staff); err != nil {
		t.Fatal(err)
	}
	r.cli("roles", "add", fmt.Sprint(staff.ID), "staff")
	plain := r.user(r.A.name, "bob@example.com")
	// Known on every site, staff on A only.
	roaming := r.user("", "eve@example.com")
	r.cli("roles", "add", fmt.Sprint(roaming.ID), "staff@"+r.A.name)

	var listed []struct {
		Site, Name, Description string
		Members                 int
	}
	if err := json.Unmarshal([]byte(r.cli("roles", "list", "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0].Members+listed[1].Members != 2 {
		t.Errorf("roles list = %+v, want staff on two sites, two members in all", listed)
	}

	staffCookie, _ := r.session(r.A.name, staff)
	plainCookie, _ := r.session(r.A.name, plain)
	roamingOnB, _ := r.session(r.B.name, roaming)
	roamingOnA, _ := r.session(r.A.name, roaming)

	forged := []string{"X-User-Roles", "admin", "X-User-Email", "root@example.com", "X-User-Name", "root", "X_User_Roles", "admin"}
	get := func(s *atkSite, cookie string) atkResp {
		t.Helper()
		hdr := append([]string{"Cookie", "latchkey_session=" + cookie}, forged...)
		return s.get(t, "/staff/page", hdr...)
	}

	before := r.A.up.count()
	if resp := get(r.A, staffCookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("staff user on A: %d, want 200", resp.StatusCode)
	}
	seen := r.A.up.last(t)
	if got := seen.Header.Get("X-User-Roles"); got != "staff" {
		t.Errorf("X-User-Roles upstream = %q, want staff (and no forged copy)", got)
	}
	if got := seen.Header.Values("X-User-Email"); len(got) != 1 || got[0] != "ada@example.com" {
		t.Errorf("X-User-Email upstream = %q", got)
	}
	if got := seen.Header.Get("X-User-Name"); got != "Ada Lovelace  X-Evil: 1" || seen.Header.Get("X-Evil") != "" {
		t.Errorf("X-User-Name upstream = %q (X-Evil %q), want the name on one line", got, seen.Header.Get("X-Evil"))
	}
	for k := range seen.Header {
		if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-User-Roles") && k != "X-User-Roles" {
			t.Errorf("a client's %s reached the upstream", k)
		}
	}
	// A route that forwards nothing more, a user with no roles: no copy of
	// the client's reaches the upstream, in any spelling.
	if resp := r.A.get(t, "/page", append([]string{"Cookie", "latchkey_session=" + plainCookie}, forged...)...); resp.StatusCode != http.StatusOK {
		t.Fatalf("plain user on A's default route: %d", resp.StatusCode)
	}
	for k, v := range r.A.up.last(t).Header {
		if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); n == "x-user-roles" || n == "x-user-email" || n == "x-user-name" {
			t.Errorf("a client's %s: %q reached the upstream", k, v)
		}
	}
	before++
	if resp := get(r.A, roamingOnA); resp.StatusCode != http.StatusOK {
		t.Errorf("staff@A user known everywhere, on A: %d, want 200", resp.StatusCode)
	}
	for _, c := range []struct {
		name   string
		site   *atkSite
		cookie string
	}{{"user without the role", r.A, plainCookie}, {"staff on A, on B", r.B, roamingOnB}, {"no session", r.A, "none"}} {
		resp := get(c.site, c.cookie)
		want := http.StatusForbidden
		if c.cookie == "none" {
			want = http.StatusUnauthorized
		}
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, want)
		}
	}
	if n := r.A.up.count() - before; n != 2 {
		t.Errorf("the upstream of A got %d requests, want the 2 admitted", n)
	}
	r.waitRefusal(t, r.A, "/staff/page", "missing_role")
	r.waitRefusal(t, r.B, "/staff/page", "missing_role")

	// Taken away with the CLI (another process, as far as the gateway
	// knows): refused within a second; granted again: admitted.
	r.cli("roles", "remove", fmt.Sprint(staff.ID), "staff")
	waitStatus(t, func() int { return get(r.A, staffCookie).StatusCode }, http.StatusForbidden)
	r.cli("roles", "add", "ada@example.com", "staff", "--site", r.A.name)
	waitStatus(t, func() int { return get(r.A, staffCookie).StatusCode }, http.StatusOK)
	if out, err := caddymodule.RunCLI("roles", "add", fmt.Sprint(plain.ID), "staf", "--config", r.cfgPath, "--adapter", "caddyfile"); err == nil {
		t.Errorf("granting a role that does not exist succeeded: %s", out)
	}
}

// waitStatus polls until get answers want, for at most a second.
func waitStatus(t *testing.T, get func() int, want int) {
	t.Helper()
	start := time.Now()
	for {
		got := get()
		if got == want {
			return
		}
		if time.Since(start) > time.Second {
			t.Fatalf("still %d after %v, want %d", got, time.Since(start), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccessLogNamesUserAndSession: Caddy's access log line for a request
// let through with a session has the user's id (user_id, which Caddy logs
// from {http.auth.user.id}) and the session's public id (session_id).
func TestAccessLogNamesUserAndSession(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "access.log")
	r := startAtkRig(t, atkOpts{noSMTP: true, aExtra: fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", logPath)})
	u := r.user(r.A.name, "log@example.com")
	cookie, sess := r.session(r.A.name, u)
	if resp := r.A.get(t, "/traced", "Cookie", "latchkey_session="+cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("session request: %d", resp.StatusCode)
	}
	var found bool
	for deadline := time.Now().Add(5 * time.Second); !found && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(logPath)
		for line := range strings.SplitSeq(string(b), "\n") {
			var entry struct {
				UserID    string `json:"user_id"`
				SessionID string `json:"session_id"`
				Request   struct {
					URI string `json:"uri"`
				} `json:"request"`
			}
			if json.Unmarshal([]byte(line), &entry) != nil || entry.Request.URI != "/traced" {
				continue
			}
			found = true
			if entry.UserID != fmt.Sprint(u.ID) || entry.SessionID != sess.ID {
				t.Errorf("access log: user_id %q session_id %q, want %d and %s", entry.UserID, entry.SessionID, u.ID, sess.ID)
			}
		}
	}
	if !found {
		t.Fatal("no access log line for the request")
	}
}

// TestRevokeEverySessionOfAUser: a user signed in twice (two browsers) is
// signed out of both by `sessions revoke --user … --all`, and a user
// deactivated with the CLI is refused on every session at once.
func TestRevokeEverySessionOfAUser(t *testing.T) {
	r := startAtkRig(t, atkOpts{noSMTP: true})
	u := r.user(r.A.name, "two@example.com")
	c1, _ := r.session(r.A.name, u)
	c2, _ := r.session(r.A.name, u)
	other := r.user(r.A.name, "keep@example.com")
	c3, _ := r.session(r.A.name, other)
	get := func(c string) func() int {
		return func() int { return r.A.get(t, "/p", "Cookie", "latchkey_session="+c).StatusCode }
	}
	for _, c := range []string{c1, c2, c3} {
		if st := get(c)(); st != http.StatusOK {
			t.Fatalf("session before: %d", st)
		}
	}
	if out := r.cli("sessions", "revoke", "--user", "two@example.com", "--all"); !strings.Contains(out, "ended 2 sessions") {
		t.Errorf("sessions revoke --user --all: %q", out)
	}
	waitStatus(t, get(c1), http.StatusUnauthorized)
	waitStatus(t, get(c2), http.StatusUnauthorized)
	if st := get(c3)(); st != http.StatusOK {
		t.Errorf("another user's session after: %d, want 200", st)
	}
	c4, _ := r.session(r.A.name, other)
	r.cli("users", "deactivate", "keep@example.com")
	waitStatus(t, get(c3), http.StatusUnauthorized)
	waitStatus(t, get(c4), http.StatusUnauthorized)
	r.waitAudit(1, func(e store.AuditEvent) bool { return e.Reason == "inactive_user" && e.UserID == other.ID })
}

// TestUsersShowLogins: `users show` gives the login count and the current
// and previous logins with their addresses, times in UTC marked Z.
func TestUsersShowLogins(t *testing.T) {
	r := startAtkRig(t, atkOpts{noSMTP: true})
	u := r.user(r.A.name, "shown@example.com")
	first := time.Date(2026, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	for i, ip := range []string{"192.0.2.10", "2001:db8::10"} {
		if err := r.st.RecordLogin(t.Context(), u.ID, first.Add(time.Duration(i)*time.Hour), ip); err != nil {
			t.Fatal(err)
		}
	}
	var js []struct {
		LoginCount     int64  `json:"login_count"`
		CurrentLoginIP string `json:"current_login_client_ip"`
		LastLoginIP    string `json:"last_login_client_ip"`
	}
	if err := json.Unmarshal([]byte(r.cli("users", "show", "shown@example.com", "--json")), &js); err != nil || len(js) != 1 {
		t.Fatalf("users show --json: %v", err)
	}
	if js[0].LoginCount != 2 || js[0].CurrentLoginIP != "2001:db8::10" || js[0].LastLoginIP != "192.0.2.10" {
		t.Errorf("users show --json = %+v", js[0])
	}
	table := r.cli("users", "show", fmt.Sprint(u.ID))
	for _, want := range []string{"PREVIOUS LOGIN", "2026-03-01 09:00:00Z", "2001:db8::10", "2026-03-01 08:00:00Z", "192.0.2.10"} {
		if !strings.Contains(table, want) {
			t.Errorf("users show table lacks %q:\n%s", want, table)
		}
	}
}
