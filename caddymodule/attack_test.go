package caddymodule_test

// The attack suite: requests an attacker would send, through a real Caddy
// with three sites on one latchkey store (attack_helpers_test.go), each case
// checking what the client got, what each upstream received and what was
// audited. Every case also sends the request that must work (a control), so
// that it fails if the protection it checks is removed rather than passing
// because nothing works at all.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/mint"
)

func TestAttack(t *testing.T) {
	trusted := "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"
	cases := []struct {
		name string
		opts atkOpts
		run  func(t *testing.T, r *atkRig)
	}{
		{"01 cross-site session", atkOpts{}, atkCrossSiteSession},
		{"02 cross-site staff", atkOpts{}, atkCrossSiteStaff},
		{"03 host-poisoned mail", atkOpts{}, atkHostPoisonedMail},
		{"04 identity headers and Connection", atkOpts{}, atkIdentityHeaders},
		{"04b identity headers the server lets through with '_' and '.'", atkOpts{global: "servers {\n\t\texpected_underscore_headers x_user_id x_session_id x_remote_user x_shop_user x_latchkey_link_data\n\t\texpected_dot_headers x.user.id x.shop.user x.latchkey.link.data\n\t}"}, atkAllowedSpellings},
		{"05 trailers", atkOpts{}, atkTrailers},
		{"06 forwarded session cookie", atkOpts{}, atkForwardedCookie},
		{"07 link prefix path tricks", atkOpts{}, atkLinkPrefixPaths},
		{"08 cross-site confirmation", atkOpts{}, atkCrossSiteConfirmation},
		{"09 off-site redirects", atkOpts{}, atkOffSiteRedirects},
		{"10 scanner prefetch then one-click", atkOpts{}, atkScannerThenOneClick},
		{"11 concurrent burst throttle", atkOpts{}, atkBurstThrottle},
		{"12 ticket route exclusivity", atkOpts{}, atkTicketExclusive},
		{"13 handle_errors", atkOpts{cExtra: "handle_errors {\n\t\trespond \"custom {err.status_code} {latchkey.reason}\"\n\t}"}, atkHandleErrors},
		{"14 secure cookie behind a trusted proxy", atkOpts{global: trusted}, atkSecureCookie(true)},
		{"14 secure cookie without trusted proxies", atkOpts{}, atkSecureCookie(false)},
		{"14 secure cookie from a proxy not trusted", atkOpts{global: "servers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t}"}, atkSecureCookie(false)},
		{"15 more", atkOpts{}, atkMore},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, startAtkRig(t, c.opts)) })
	}
}

// loginWithCode redeems an invite code on s and returns the session token.
func (r *atkRig) loginWithCode(t *testing.T, s *atkSite, code string, hdr ...string) (atkResp, string) {
	t.Helper()
	resp := s.postForm(t, "/.latchkey/login", url.Values{"code": {code}}, hdr...)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("invite code on site %s: %d, want 303\n%s", s.label, resp.StatusCode, resp.Body)
	}
	c := resp.cookie("latchkey_session")
	if c == nil || c.Value == "" {
		t.Fatalf("no session cookie after the invite code on site %s: %v", s.label, resp.Header)
	}
	return resp, c.Value
}

// 1. A session started on site A is refused on B and on the catch-all C
// (even when C is sent A's Host), the refusal is audited as wrong_site, the
// cookie is left alone (it may be A's live session), and no upstream but A's
// sees anything.
func atkCrossSiteSession(t *testing.T, r *atkRig) {
	code, _ := r.invite(r.A.name, "ada@example.com")
	_, token := r.loginWithCode(t, r.A, code)
	if resp := r.A.get(t, "/home", atkCookie(token)...); resp.StatusCode != 200 {
		t.Fatalf("control: the session on its own site: %d", resp.StatusCode)
	}
	aSeen := r.A.up.count()

	cases := []struct {
		site *atkSite
		host string
		path string
	}{
		{r.B, "", "/cross-b"},
		{r.C, "", "/cross-c"},
		{r.C, r.A.host, "/cross-c-with-a-host"},
	}
	for _, c := range cases {
		for _, accept := range []string{"", "application/json", "text/html"} {
			hdr := atkPairs(atkCookie(token)...)
			if accept != "" {
				hdr = append(hdr, [2]string{"Accept", accept})
			}
			resp := c.site.send(t, atkReq{Target: c.path, Host: c.host, Header: hdr})
			want := http.StatusUnauthorized
			if accept == "text/html" {
				want = http.StatusFound // to the site's own login page
			}
			if resp.StatusCode != want {
				t.Errorf("A's session on %s (Host %q, Accept %q): %d, want %d", c.site.label, c.host, accept, resp.StatusCode, want)
			}
			if ck := resp.cookie("latchkey_session"); ck != nil {
				t.Errorf("A's session on %s: the refusal touched the cookie: %v", c.site.label, ck)
			}
		}
		r.waitRefusal(t, nil, c.path, "wrong_site")
	}
	// The staff page and logout of B do not know A's session either.
	if resp := r.B.get(t, "/.latchkey/invite", atkCookie(token)...); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("A's session on B's staff page: %d, want 401", resp.StatusCode)
	}
	r.waitRefusal(t, r.B, "/.latchkey/invite", "wrong_site")
	r.B.postForm(t, "/.latchkey/logout", nil, atkCookie(token)...)
	if resp := r.A.get(t, "/after-b-logout", atkCookie(token)...); resp.StatusCode != 200 {
		t.Errorf("B's logout ended A's session: %d", resp.StatusCode)
	}
	if n := r.B.up.count() + r.C.up.count(); n != 0 {
		t.Errorf("the upstreams of B and C got %d requests with A's session", n)
	}
	if r.A.up.count() != aSeen+1 {
		t.Errorf("A's upstream got %d requests, want %d", r.A.up.count(), aSeen+1)
	}
}

// 2. Staff of site A is not staff of site B, and a role without a site
// grants nothing.
func atkCrossSiteStaff(t *testing.T, r *atkRig) {
	boss := r.user("", "boss@example.com", store.Role{Site: r.A.name, Name: "staff"})
	onA, _ := r.session(r.A.name, boss)
	onB, _ := r.session(r.B.name, boss)
	legacy := r.user("", "legacy@example.com", store.Role{Site: "", Name: "staff"})
	legacyA, _ := r.session(r.A.name, legacy)

	if resp := r.B.get(t, "/.latchkey/invite", atkCookie(onB)...); resp.StatusCode != http.StatusForbidden {
		t.Errorf("A's staff on B's invite page: %d, want 403", resp.StatusCode)
	}
	e := r.waitRefusal(t, r.B, "/.latchkey/invite", "not_staff")
	if e.UserID != boss.ID {
		t.Errorf("not_staff audited for user %d, want %d", e.UserID, boss.ID)
	}
	if resp := r.B.postForm(t, "/.latchkey/invite", url.Values{"email": {"friend@example.com"}}, atkCookie(onB)...); resp.StatusCode != http.StatusForbidden {
		t.Errorf("A's staff posting B's invite page: %d, want 403", resp.StatusCode)
	}
	if resp := r.A.get(t, "/.latchkey/invite", atkCookie(legacyA)...); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a staff role without a site on A's invite page: %d, want 403", resp.StatusCode)
	}
	if invs, err := r.st.Invites(context.Background(), store.InviteFilter{}); err != nil || len(invs) != 0 {
		t.Fatalf("invites after the refused posts: %+v %v", invs, err)
	}
	// Control: on A the same user is staff.
	if resp := r.A.get(t, "/.latchkey/invite", atkCookie(onA)...); resp.StatusCode != 200 {
		t.Errorf("A's staff on A's invite page: %d, want 200", resp.StatusCode)
	}
	if resp := r.A.postForm(t, "/.latchkey/invite", url.Values{"email": {"friend@example.com"}}, atkCookie(onA)...); resp.StatusCode != 200 {
		t.Errorf("A's staff inviting on A: %d, want 200", resp.StatusCode)
	}
	invs, err := r.st.Invites(context.Background(), store.InviteFilter{})
	if err != nil || len(invs) != 1 || invs[0].Site != r.A.name {
		t.Errorf("invites after A's staff invited: %+v %v", invs, err)
	}
	for _, s := range []*atkSite{r.A, r.B, r.C} {
		if s.up.count() != 0 {
			t.Errorf("the staff page reached upstream %s", s.label)
		}
	}
}

// atkCheckMailOrigin checks that every URL of a mail is on origin and that
// nothing in it names the attacker's host; it returns the URLs.
func atkCheckMailOrigin(t *testing.T, m atkMail, origin string) []string {
	t.Helper()
	if all := m.all(); strings.Contains(strings.ToLower(all), "evil.example") {
		t.Errorf("the mail names the attacker's host:\n%s", all)
	}
	urls := m.urls()
	if len(urls) == 0 {
		t.Errorf("no URL in the mail:\n%s", m.all())
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, origin+"/") {
			t.Errorf("mail URL %q is not on the site's origin %s", u, origin)
		}
	}
	return urls
}

func atkHasPrefix(urls []string, prefix string) bool {
	for _, u := range urls {
		if strings.HasPrefix(u, prefix) {
			return true
		}
	}
	return false
}

// 3. Mails built while the request names another host (Host,
// X-Forwarded-Host, an absolute request-target, Forwarded) link to the
// site's configured origin only.
func atkHostPoisonedMail(t *testing.T, r *atkRig) {
	r.user(r.C.name, "vic@example.com")
	form := url.Values{"email": {"vic@example.com"}, "next": {"/inbox"}}.Encode()
	poisons := []atkReq{
		{Target: "/.latchkey/login", Host: "evil.example", Header: atkPairs("X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https")},
		{Target: "http://evil.example/.latchkey/login", Host: "evil.example"},
		{Target: "/.latchkey/login", Host: fmt.Sprintf("evil.example:%d", r.C.port), Header: atkPairs("Forwarded", "host=evil.example;proto=https", "X-Forwarded-Host", "evil.example:443", "X-Original-Host", "evil.example")},
	}
	for i, p := range poisons {
		p.Method = http.MethodPost
		p.Body = form
		p.Header = append(p.Header, [2]string{"Content-Type", "application/x-www-form-urlencoded"})
		if resp := r.C.send(t, p); resp.StatusCode != 200 {
			t.Fatalf("email form with Host %s: %d", p.Host, resp.StatusCode)
		}
		m := r.waitMail(t, "vic@example.com", i+1)
		urls := atkCheckMailOrigin(t, m, r.C.origin)
		if !atkHasPrefix(urls, r.C.origin+"/inbox?token=") {
			t.Errorf("no sign-in link to %s/inbox in the mail: %v", r.C.origin, urls)
		}
	}

	// The staff page: an invite's login URL and the sign-in link it mails
	// to an existing account.
	boss := r.user(r.C.name, "boss@example.com", store.Role{Site: r.C.name, Name: "staff"})
	tok, _ := r.session(r.C.name, boss)
	staffPost := func(email string) {
		t.Helper()
		resp := r.C.send(t, atkReq{Method: http.MethodPost, Target: "/.latchkey/invite", Host: "evil.example",
			Header: atkPairs("Content-Type", "application/x-www-form-urlencoded", "Cookie", "latchkey_session="+tok, "X-Forwarded-Host", "evil.example"),
			Body:   url.Values{"email": {email}}.Encode()})
		if resp.StatusCode != 200 {
			t.Fatalf("staff page POST for %s with Host evil.example: %d\n%s", email, resp.StatusCode, resp.Body)
		}
		if bytes.Contains(resp.Body, []byte("evil.example")) {
			t.Errorf("the staff page shows the attacker's host")
		}
	}
	staffPost("newbie@example.com")
	urls := atkCheckMailOrigin(t, r.waitMail(t, "newbie@example.com", 1), r.C.origin)
	if !atkHasPrefix(urls, r.C.origin+"/.latchkey/login") {
		t.Errorf("the invite mail lacks the login URL %s/.latchkey/login: %v", r.C.origin, urls)
	}
	staffPost("vic@example.com")
	urls = atkCheckMailOrigin(t, r.waitMail(t, "vic@example.com", len(poisons)+1), r.C.origin)
	if !atkHasPrefix(urls, r.C.origin+"/?token=") {
		t.Errorf("the staff page's sign-in link for an existing account is not %s/?token=…: %v", r.C.origin, urls)
	}

	// Site A: a Host naming another port of the same host name still
	// reaches A's block; the mail has A's origin with A's port.
	r.user(r.A.name, "ann@example.com")
	resp := r.A.send(t, atkReq{Method: http.MethodPost, Target: "/.latchkey/login", Host: "127.0.0.1:1",
		Header: atkPairs("Content-Type", "application/x-www-form-urlencoded"), Body: url.Values{"email": {"ann@example.com"}}.Encode()})
	if resp.StatusCode != 200 {
		t.Fatalf("email form on A with Host 127.0.0.1:1: %d", resp.StatusCode)
	}
	urls = atkCheckMailOrigin(t, r.waitMail(t, "ann@example.com", 1), r.A.origin)
	if !atkHasPrefix(urls, r.A.origin+"/?token=") {
		t.Errorf("sign-in link on A: %v", urls)
	}
}

// Every name some handler of the app vouches for, and the gateway's own
// prefixes.
var atkProtected = []string{"X-User-ID", "X-Session-ID", "X-Remote-User", "X-Remote-Session", "X-Shop-User",
	"X-Latchkey-Link-Data", "X-Ticket-ID", "X-Ticket-Place", "X-Ticket-Purpose", "X-Ticket-Data"}

// forged are client copies of every protected name, in several spellings.
var atkForged = atkPairs(
	"X-User-ID", "1337", "x_user_id", "1338", "X_USER_ID", "1339",
	"X-Session-ID", "forged-session", "x_session_id", "forged-session-2",
	"X-Remote-User", "1340", "x_remote_user", "1341", "X-REMOTE-SESSION", "forged-session-3",
	"X-Shop-User", "1342", "X_Shop_User", "1343",
	"X-Latchkey-Link-Data", `{"admin":true}`, "x_latchkey_link_data", `{"admin":true}`,
	"X-Ticket-Data", `{"vip":true}`, "X-Ticket-Place", "orsay", "x_ticket_id", "forged-ticket",
)

// atkCheckIdentity checks that the upstream got exactly want (one value per
// name, whatever the spelling) and none of the other protected names.
func atkCheckIdentity(t *testing.T, what string, seen atkSeen, want map[string]string) {
	t.Helper()
	for _, name := range atkProtected {
		got := atkHeaderValues(seen.Header, name)
		w, ok := want[name]
		switch {
		case ok && (len(got) != 1 || got[0] != w):
			t.Errorf("%s: upstream got %s = %q, want only %q", what, name, got, w)
		case !ok && len(got) != 0:
			t.Errorf("%s: upstream got %s = %q, which the gateway did not set", what, name, got)
		}
	}
	for k := range seen.Header {
		n := atkNorm(k)
		if !strings.HasPrefix(n, "x-latchkey-") && !strings.HasPrefix(n, "x-ticket-") {
			continue
		}
		found := false
		for w := range want {
			found = found || atkNorm(w) == n
		}
		if !found {
			t.Errorf("%s: upstream got %s = %q, which the gateway did not set", what, k, seen.Header[k])
		}
	}
}

// 4. Client copies of identity headers never arrive, whatever the spelling
// and whichever handler of the app names them; a Connection header naming
// them cannot make the proxy drop the gateway's own.
func atkIdentityHeaders(t *testing.T, r *atkRig) {
	u := r.user("", "ida@example.com")
	tokA, sA := r.session(r.A.name, u)
	tokB, sB := r.session(r.B.name, u)
	tokC, sC := r.session(r.C.name, u)
	uid := fmt.Sprint(u.ID)
	l := r.mintLink("--user", "ida@example.com", "--url", r.A.origin+"/unsubscribe/news", "--max-uses", "0", "--data", `{"list":"news"}`)
	_, linkTarget := l.split(t)
	tk := r.ticket("--place", "louvre", "--purpose", "visit", "--data", `{"seat":"12"}`)
	ticketTarget := func() string {
		// A ticket is used once: each request gets a new one.
		tk := r.ticket("--place", "louvre", "--purpose", "visit", "--data", `{"seat":"12"}`)
		return "/louvre/room?uuid=" + tk.UUID + "&password=" + url.QueryEscape(tk.Password)
	}
	_ = tk
	type route struct {
		name   string
		site   *atkSite
		target func() string
		cookie string
		want   map[string]string
		conn   string // a Connection header naming what the route sets
	}
	routes := []route{
		{"A session", r.A, func() string { return "/page" }, tokA,
			map[string]string{"X-User-ID": uid, "X-Session-ID": sA.ID}, "X-User-ID, x_session_id, Keep-Alive"},
		{"A custom header route", r.A, func() string { return "/custom/page" }, tokA,
			map[string]string{"X-Remote-User": uid, "X-Remote-Session": sA.ID}, "X-Remote-User,X_REMOTE_SESSION"},
		{"B session", r.B, func() string { return "/page" }, tokB,
			map[string]string{"X-User-ID": uid, "X-Session-ID": sB.ID}, "x-user-id, X-Session-Id"},
		{"C session (X-Shop-User)", r.C, func() string { return "/page" }, tokC,
			map[string]string{"X-Shop-User": uid, "X-Session-ID": sC.ID}, "X-Shop-User, X-Session-ID"},
		{"A request-mode link", r.A, func() string { return linkTarget }, "",
			map[string]string{"X-User-ID": uid, "X-Latchkey-Link-Data": `{"list":"news"}`}, "X-User-ID, X-Latchkey-Link-Data"},
		{"A ticket", r.A, ticketTarget, "",
			map[string]string{"X-Ticket-Place": "louvre", "X-Ticket-Purpose": "visit", "X-Ticket-Data": `{"seat":"12"}`}, "X-Ticket-Data, X-Ticket-Place, X-Ticket-Purpose, X-Ticket-ID"},
	}
	for _, rt := range routes {
		for _, mode := range []string{"forged", "connection"} {
			var hdr [][2]string
			if rt.cookie != "" {
				hdr = append(hdr, [2]string{"Cookie", "latchkey_session=" + rt.cookie})
			}
			if mode == "forged" {
				hdr = append(hdr, atkForged...)
			} else {
				hdr = append(hdr, [2]string{"Connection", rt.conn})
			}
			before := rt.site.up.count()
			resp := rt.site.send(t, atkReq{Target: rt.target(), Header: hdr})
			if resp.StatusCode != 200 || rt.site.up.count() != before+1 {
				t.Errorf("%s (%s): %d, upstream got %d new requests; want 200 and one", rt.name, mode, resp.StatusCode, rt.site.up.count()-before)
				continue
			}
			seen := rt.site.up.last(t)
			want := rt.want
			if rt.name == "A ticket" {
				want = map[string]string{}
				for k, v := range rt.want {
					want[k] = v
				}
				ids := atkHeaderValues(seen.Header, "X-Ticket-ID")
				if len(ids) != 1 || strings.Contains(ids[0], "forged") {
					t.Errorf("%s (%s): X-Ticket-ID %q", rt.name, mode, ids)
				} else {
					want["X-Ticket-ID"] = ids[0]
				}
			}
			atkCheckIdentity(t, rt.name+" ("+mode+")", seen, want)
		}
	}
	// Refused requests carrying the forged names reach nothing.
	for _, s := range []*atkSite{r.A, r.B, r.C} {
		before := s.up.count()
		if resp := s.send(t, atkReq{Target: "/nocred", Header: atkForged}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("forged identity without a credential on %s: %d, want 401", s.label, resp.StatusCode)
		}
		if s.up.count() != before {
			t.Errorf("forged identity without a credential reached upstream %s", s.label)
		}
	}
}

// 4b. Caddy drops header names with '_' or '.' unless the server allows
// them (for CGI and PHP backends, which fold '-', '_' and '.' onto one
// variable): when it does, the gateway still removes client copies of
// identity headers in those spellings.
func atkAllowedSpellings(t *testing.T, r *atkRig) {
	u := r.user("", "dot@example.com")
	tokA, sA := r.session(r.A.name, u)
	tokC, sC := r.session(r.C.name, u)
	uid := fmt.Sprint(u.ID)
	forged := atkPairs("x_user_id", "1", "X_Shop_User", "2", "x_remote_user", "3", "x_session_id", "forged",
		"x.user.id", "4", "X.Shop.User", "5", "x_latchkey_link_data", "{}", "x.latchkey.link.data", "{}")
	for _, c := range []struct {
		name string
		site *atkSite
		tok  string
		want map[string]string
	}{
		{"A", r.A, tokA, map[string]string{"X-User-ID": uid, "X-Session-ID": sA.ID}},
		{"C", r.C, tokC, map[string]string{"X-Shop-User": uid, "X-Session-ID": sC.ID}},
	} {
		hdr := append(atkPairs("Cookie", "latchkey_session="+c.tok, "x_harmless", "ok"), forged...)
		resp := c.site.send(t, atkReq{Target: "/spellings", Header: hdr})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", c.name, resp.StatusCode)
		}
		seen := c.site.up.last(t)
		atkCheckIdentity(t, "site "+c.name, seen, c.want)
	}
}

// 5. Identity sent as a trailer of a chunked body never reaches the
// upstream, declared in the Trailer header or not, on a session route and
// on a link route that reads the body itself. A harmless trailer does
// arrive: the proxy forwards trailers, so the check is not vacuous.
func atkTrailers(t *testing.T, r *atkRig) {
	u := r.user(r.A.name, "tess@example.com")
	tok, s := r.session(r.A.name, u)
	uid := fmt.Sprint(u.ID)
	cases := []struct {
		name     string
		target   func() string
		cookie   bool
		body     string
		ctype    string
		declared string
		trailers [][2]string
		want     map[string]string
	}{
		{"session, declared", func() string { return "/upload" }, true, "hello", "text/plain",
			"X-User-ID, X-Latchkey-Link-Data, X-Harmless",
			atkPairs("X-User-ID", "1", "X-Latchkey-Link-Data", `{"admin":true}`, "X-Harmless", "ok"),
			map[string]string{"X-User-ID": uid, "X-Session-ID": s.ID}},
		{"session, undeclared", func() string { return "/upload" }, true, "hello", "text/plain",
			"X-Harmless",
			atkPairs("X-Harmless", "ok", "x_user_id", "2", "X-Session-ID", "forged", "X-Remote-User", "3", "X-Shop-User", "4", "X-Ticket-Data", "{}"),
			map[string]string{"X-User-ID": uid, "X-Session-ID": s.ID}},
		{"link one-click", func() string {
			l := r.mintLink("--user", "tess@example.com", "--url", r.A.origin+"/unsubscribe/news")
			_, target := l.split(t)
			return target
		}, false, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded",
			"X-User-ID, X-Harmless",
			atkPairs("X-User-ID", "1", "X_Latchkey_Link_Data", `{"admin":true}`, "X-Harmless", "ok"),
			map[string]string{"X-User-ID": uid}},
	}
	for _, c := range cases {
		hdr := atkPairs("Content-Type", c.ctype, "Trailer", c.declared)
		if c.cookie {
			hdr = append(hdr, [2]string{"Cookie", "latchkey_session=" + tok})
		}
		before := r.A.up.count()
		resp := r.A.send(t, atkReq{Method: http.MethodPost, Target: c.target(), Header: hdr, Body: c.body, Chunked: true, Trailer: c.trailers})
		if resp.StatusCode != 200 || r.A.up.count() != before+1 {
			t.Errorf("%s: %d, upstream got %d new requests; want 200 and one\n%s", c.name, resp.StatusCode, r.A.up.count()-before, resp.Body)
			continue
		}
		seen := r.A.up.last(t)
		if string(seen.Body) != c.body {
			t.Errorf("%s: upstream body %q, want %q", c.name, seen.Body, c.body)
		}
		if got := atkHeaderValues(seen.Trailer, "X-Harmless"); len(got) != 1 || got[0] != "ok" {
			t.Errorf("%s: the harmless trailer did not arrive (%v): the proxy does not forward trailers, so this case checks nothing", c.name, seen.Trailer)
		}
		for _, name := range atkProtected {
			if got := atkHeaderValues(seen.Trailer, name); len(got) != 0 {
				t.Errorf("%s: upstream got trailer %s = %q", c.name, name, got)
			}
		}
		for k := range seen.Trailer {
			if n := atkNorm(k); strings.HasPrefix(n, "x-latchkey-") || strings.HasPrefix(n, "x-ticket-") {
				t.Errorf("%s: upstream got trailer %s", c.name, k)
			}
		}
		atkCheckIdentity(t, c.name, seen, c.want)
	}
}

// 6. The session cookie is never forwarded; the other cookies arrive as
// sent, in order.
func atkForwardedCookie(t *testing.T, r *atkRig) {
	u := r.user(r.A.name, "coco@example.com")
	tok, _ := r.session(r.A.name, u)
	cases := []struct {
		name  string
		lines []string
		want  []string // cookie names the upstream gets, in order
	}{
		{"middle", []string{"a=1; latchkey_session=" + tok + "; b=2"}, []string{"a=1", "b=2"}},
		{"two lines", []string{"a=1", "latchkey_session=" + tok + "; b=2"}, []string{"a=1", "b=2"}},
		{"upper-case copy", []string{"LATCHKEY_SESSION=" + tok + "; latchkey_session=" + tok + "; c=3"}, []string{"c=3"}},
		{"mixed case, no spaces", []string{"latchkey_session=" + tok + ";a=1;Latchkey_Session=" + tok}, []string{"a=1"}},
		{"alone", []string{"latchkey_session=" + tok}, nil},
		{"three lines", []string{"x=9", "latchkey_session=" + tok, "y=8; LatchKey_Session=zzz; z=7"}, []string{"x=9", "y=8", "z=7"}},
	}
	for _, c := range cases {
		var hdr [][2]string
		for _, l := range c.lines {
			hdr = append(hdr, [2]string{"Cookie", l})
		}
		before := r.A.up.count()
		resp := r.A.send(t, atkReq{Target: "/cookies", Header: hdr})
		if resp.StatusCode != 200 || r.A.up.count() != before+1 {
			t.Errorf("%s: %d; want 200 through to the upstream", c.name, resp.StatusCode)
			continue
		}
		seen := r.A.up.last(t)
		joined := strings.Join(seen.Header["Cookie"], "\n")
		if strings.Contains(joined, tok) || strings.Contains(strings.ToLower(joined), "latchkey_session") {
			t.Errorf("%s: upstream Cookie %q carries the session cookie", c.name, seen.Header["Cookie"])
		}
		var got []string
		for _, ck := range (&http.Request{Header: http.Header{"Cookie": seen.Header["Cookie"]}}).Cookies() {
			got = append(got, ck.Name+"="+ck.Value)
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: upstream cookies %q (Cookie %q), want %q", c.name, got, seen.Header["Cookie"], c.want)
		}
	}
	// A browser with a session sends its cookie along with a link or a
	// ticket too: it stays in the gateway there as well.
	l := r.mintLink("--user", "coco@example.com", "--url", r.A.origin+"/unsubscribe/news", "--max-uses", "0")
	_, linkTarget := l.split(t)
	tk := r.ticket("--place", "louvre", "--purpose", "visit")
	for _, target := range []string{linkTarget, "/louvre/room?uuid=" + tk.UUID + "&password=" + url.QueryEscape(tk.Password)} {
		if resp := r.A.get(t, target, "Cookie", "a=1; latchkey_session="+tok); resp.StatusCode != 200 {
			t.Errorf("%s with a session cookie: %d", target, resp.StatusCode)
			continue
		}
		if got := r.A.up.last(t).Header["Cookie"]; len(got) != 1 || got[0] != "a=1" {
			t.Errorf("%s: upstream Cookie %q, want only a=1", target, got)
		}
	}
}

// 7. A link good for everything under /unsubscribe/ does not reach paths an
// upstream could read as outside it.
func atkLinkPrefixPaths(t *testing.T, r *atkRig) {
	r.user(r.A.name, "una@example.com")
	l := r.mintLink("--user", "una@example.com", "--url", r.A.origin+"/unsubscribe/", "--max-uses", "0")
	token, _ := l.split(t)
	if resp := r.A.get(t, "/unsubscribe/news?token="+token); resp.StatusCode != 200 || r.A.up.count() != 1 {
		t.Fatalf("control: the link under its prefix: %d, upstream %d", resp.StatusCode, r.A.up.count())
	}
	paths := []string{
		"/unsubscribe/..;/admin",
		"/unsubscribe/%2e%2e/admin",
		"/unsubscribe/.%2e/admin",
		"/unsubscribe/%2E%2E/admin",
		"/unsubscribe/%2fadmin",
		"/unsubscribe/%2F..%2Fadmin",
		"/unsubscribe/../admin",
		"/unsubscribe/..%3b/admin",
		"/unsubscribe/%252e%252e/admin",
		"/unsubscribe/%5c..%5cadmin",
		"/unsubscribe/..\\admin",
		"/unsubscribe/%ef%bc%8e%ef%bc%8e/admin",
		"/unsubscribe/%c0%ae%c0%ae/admin",
		"/unsubscribe/news;jsessionid=x/../../admin",
		"/unsubscribe//admin",
	}
	for _, p := range paths {
		resp := r.A.get(t, p+"?token="+token)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("link at %s: %d, want 403", p, resp.StatusCode)
		}
	}
	if n := r.A.up.count(); n != 1 {
		t.Errorf("upstream got %d requests, want only the control's", n)
	}
	evs := r.waitAudit(len(paths), func(e store.AuditEvent) bool {
		return e.Kind == "link" && e.Outcome == store.OutcomeRefused && e.CredentialID == l.JTI
	})
	for _, e := range evs {
		if e.Reason != "wrong_target" {
			t.Errorf("refusal at %s audited as %q, want wrong_target", e.Path, e.Reason)
		}
	}
}

// 8. A cross-site form can use no credential: not a magic link's
// confirmation, not a one-click, not an invite code, not logout.
func atkCrossSiteConfirmation(t *testing.T, r *atkRig) {
	u := r.user(r.A.name, "cara@example.com")
	login := r.mintLink("--user", "cara@example.com", "--url", r.A.origin+"/dash", "--mode", "login")
	_, loginTarget := login.split(t)
	unsub := r.mintLink("--user", "cara@example.com", "--url", r.A.origin+"/unsubscribe/news")
	_, unsubTarget := unsub.split(t)
	code, inv := r.invite(r.A.name, "newcomer@example.com")
	tok, _ := r.session(r.A.name, u)

	crossSite := [][][2]string{
		atkPairs("Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"),
		atkPairs("Origin", "https://evil.example"),
		atkPairs("Sec-Fetch-Site", "cross-site"),
		atkPairs("Origin", "null"),
		atkPairs("Origin", "http://localhost:"+fmt.Sprint(r.B.port), "Sec-Fetch-Site", "same-site"),
	}
	post := func(target, body string, extra [][2]string, cookie string) atkResp {
		h := append(atkPairs("Content-Type", "application/x-www-form-urlencoded"), extra...)
		if cookie != "" {
			h = append(h, [2]string{"Cookie", "latchkey_session=" + cookie})
		}
		return r.A.send(t, atkReq{Method: http.MethodPost, Target: target, Header: h, Body: body})
	}
	for i, cs := range crossSite {
		for _, c := range []struct{ name, target, body, cookie string }{
			{"magic link confirmation", loginTarget, "latchkey_confirm=1", ""},
			{"request link confirmation", unsubTarget, "latchkey_confirm=1", ""},
			{"one-click", unsubTarget, "List-Unsubscribe=One-Click", ""},
			{"invite code", "/.latchkey/login", url.Values{"code": {code}}.Encode(), ""},
			{"logout", "/.latchkey/logout", "", tok},
		} {
			resp := post(c.target, c.body, cs, c.cookie)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with %v: %d, want 403", c.name, cs, resp.StatusCode)
			}
			if ck := resp.cookie("latchkey_session"); ck != nil {
				t.Errorf("%s with %v set a cookie: %v", c.name, cs, ck)
			}
		}
		if i == 0 {
			evs := r.waitAudit(5, func(e store.AuditEvent) bool { return e.Reason == "cross_origin" })
			for _, e := range evs {
				if e.Status != http.StatusForbidden || e.Outcome != store.OutcomeRefused {
					t.Errorf("cross_origin audited as %+v", e)
				}
			}
		}
	}
	for _, l := range []atkLink{login, unsub} {
		if row, err := r.st.Link(context.Background(), l.JTI); err != nil || row.Uses != 0 {
			t.Errorf("link %s after cross-site posts: %+v %v; want no use", l.JTI, row, err)
		}
	}
	if got, err := r.st.Invite(context.Background(), inv.ID); err != nil || got.UseCount != 0 {
		t.Errorf("invite after cross-site posts: %+v %v; want no use", got, err)
	}
	if resp := r.A.get(t, "/still-in", atkCookie(tok)...); resp.StatusCode != 200 {
		t.Errorf("the session after cross-site logouts: %d, want 200", resp.StatusCode)
	}
	if n := r.A.up.count(); n != 1 {
		t.Errorf("upstream got %d requests, want only the session control's", n)
	}
	// Controls: the same posts from the site itself (or from a mail
	// server, with no Origin) work.
	sameOrigin := atkPairs("Origin", r.A.origin, "Sec-Fetch-Site", "same-origin")
	if resp := post(loginTarget, "latchkey_confirm=1", sameOrigin, ""); resp.StatusCode != http.StatusSeeOther || resp.cookie("latchkey_session") == nil {
		t.Errorf("control: confirming the magic link from the site: %d", resp.StatusCode)
	}
	if resp := post(unsubTarget, "List-Unsubscribe=One-Click", nil, ""); resp.StatusCode != 200 {
		t.Errorf("control: one-click from a mail server: %d", resp.StatusCode)
	}
	if resp := post("/.latchkey/login", url.Values{"code": {code}}.Encode(), sameOrigin, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("control: the invite code from the site: %d", resp.StatusCode)
	}
	if resp := post("/.latchkey/logout", "", sameOrigin, tok); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("control: logout from the site: %d", resp.StatusCode)
	}
	if resp := r.A.get(t, "/logged-out", atkCookie(tok)...); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("control: the session after logout: %d, want 401", resp.StatusCode)
	}
}

// atkOffSite reports whether a Location, as a browser on base would follow it,
// leaves base's host.
func atkOffSite(base, loc string) bool {
	b, _ := url.Parse(base)
	// A browser reads '\' as '/' and drops tabs and newlines.
	loc = strings.NewReplacer("\\", "/", "\t", "", "\n", "", "\r", "").Replace(strings.TrimSpace(loc))
	u, err := url.Parse(loc)
	if err != nil {
		return true
	}
	res := b.ResolveReference(u)
	return res.Host != b.Host || res.Scheme != b.Scheme
}

// 9. No redirect after sign-in or sign-out, and no next= on the way to the
// login page, leads off the site.
func atkOffSiteRedirects(t *testing.T, r *atkRig) {
	code, _ := r.invite(r.A.name, "nav@example.com")
	nexts := []string{
		`/\evil.example`, `/%5Cevil.example`, `/%5cevil.example`, `//evil.example`, `/%2F%2Fevil.example`, `/%2f%2fevil.example`,
		`https://evil.example`, `\\evil.example`, `\/evil.example`, `/\/evil.example`, "/\t/evil.example", "/%09/evil.example",
		`//evil.example/%2e%2e`, `/%5C%5Cevil.example`, `javascript:alert(1)`, `http:evil.example`, ` //evil.example`,
		`/.//evil.example`, `/%2e/%2fevil.example`,
	}
	for _, next := range nexts {
		resp := r.A.postForm(t, "/.latchkey/login", url.Values{"code": {code}, "next": {next}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("login with next=%q: %d, want 303", next, resp.StatusCode)
			continue
		}
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("login with next=%q: Location %q, want /", next, loc)
		}
		resp = r.A.postForm(t, "/.latchkey/logout", url.Values{"next": {next}})
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/.latchkey/logout?signed_out=1" {
			t.Errorf("logout with next=%q: %d Location %q, want 303 to the sign-out confirmation", next, resp.StatusCode, loc)
		}
		page := r.A.get(t, "/.latchkey/login?next="+url.QueryEscape(next))
		if page.StatusCode != 200 || bytes.Contains(page.Body, []byte("evil.example")) {
			t.Errorf("login page with next=%q: %d, page names evil.example: %v", next, page.StatusCode, bytes.Contains(page.Body, []byte("evil.example")))
		}
	}
	// Control: a same-site next is kept.
	if resp := r.A.postForm(t, "/.latchkey/login", url.Values{"code": {code}, "next": {"/reports?q=1"}}); resp.Header.Get("Location") != "/reports?q=1" {
		t.Errorf("control: login with next=/reports?q=1: Location %q", resp.Header.Get("Location"))
	}

	// The way to the login page carries the request's path as next=.
	targets := []string{"//evil.example/%2e%2e", "//evil.example", `/\evil.example`, "/%5Cevil.example/x", "/%2F%2Fevil.example", "//evil.example/..", "///evil.example"}
	for _, target := range targets {
		resp := r.A.get(t, target, "Accept", "text/html")
		if resp.StatusCode != http.StatusFound {
			t.Errorf("GET %s by a browser: %d, want 302 to the login page", target, resp.StatusCode)
			continue
		}
		loc := resp.Header.Get("Location")
		if atkOffSite(r.A.origin+target, loc) {
			t.Errorf("GET %s: Location %q leaves the site", target, loc)
		}
		lu, err := url.Parse(loc)
		if err != nil {
			t.Errorf("GET %s: Location %q: %v", target, loc, err)
			continue
		}
		if lu.Path != "/.latchkey/login" {
			t.Errorf("GET %s: Location %q is not the login page", target, loc)
		}
		if next := lu.Query().Get("next"); next != "" && atkOffSite(r.A.origin+"/", next) {
			t.Errorf("GET %s: the login page's next=%q leaves the site", target, next)
		}
	}
	if resp := r.A.get(t, "/reports?y=1", "Accept", "text/html"); resp.Header.Get("Location") != "/.latchkey/login?next=%2Freports%3Fy%3D1" {
		t.Errorf("control: the login redirect for /reports?y=1: %q", resp.Header.Get("Location"))
	}
	if r.A.up.count() != 0 {
		t.Errorf("upstream got %d requests", r.A.up.count())
	}
}

// 10. A mail scanner's GET and HEAD of a one-use request link show a page
// and use nothing; the RFC 8058 one-click POST, multipart as mail providers
// send it, uses it once.
func atkScannerThenOneClick(t *testing.T, r *atkRig) {
	u := r.user(r.A.name, "sam@example.com")
	for _, kind := range []string{"multipart", "urlencoded"} {
		l := r.mintLink("--user", "sam@example.com", "--url", r.A.origin+"/unsubscribe/news?list=a")
		_, target := l.split(t)
		before := r.A.up.count()
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodGet} {
			resp := r.A.send(t, atkReq{Method: m, Target: target, Header: atkPairs("User-Agent", "Barracuda Sentinel (EE)", "Accept", "*/*")})
			if resp.StatusCode != 200 {
				t.Errorf("%s %s by a scanner: %d, want the confirmation page", kind, m, resp.StatusCode)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("confirmation page headers: %v", resp.Header)
			}
		}
		if r.A.up.count() != before {
			t.Fatalf("%s: the scanner's requests reached the upstream", kind)
		}
		if row, err := r.st.Link(context.Background(), l.JTI); err != nil || row.Uses != 0 {
			t.Fatalf("%s: after the scanner, link row %+v %v; want no use", kind, row, err)
		}
		var body, ctype string
		if kind == "multipart" {
			var b bytes.Buffer
			mw := multipart.NewWriter(&b)
			mw.WriteField("List-Unsubscribe", "One-Click")
			mw.Close()
			body, ctype = b.String(), mw.FormDataContentType()
		} else {
			body, ctype = "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
		}
		oneClick := func() atkResp {
			return r.A.send(t, atkReq{Method: http.MethodPost, Target: target, Header: atkPairs("Content-Type", ctype, "User-Agent", "Google-Mail-Unsubscribe"), Body: body})
		}
		if resp := oneClick(); resp.StatusCode != 200 || string(resp.Body) != "upstream A" {
			t.Fatalf("%s one-click: %d %q, want the upstream's 200", kind, resp.StatusCode, resp.Body)
		}
		if r.A.up.count() != before+1 {
			t.Fatalf("%s one-click: upstream got %d requests, want 1", kind, r.A.up.count()-before)
		}
		seen := r.A.up.last(t)
		// Whatever form the client used, the upstream gets exactly RFC
		// 8058's body, urlencoded.
		if seen.Method != http.MethodPost || seen.URI != "/unsubscribe/news?list=a" || string(seen.Body) != "List-Unsubscribe=One-Click" || seen.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s one-click upstream got %s %s (%s) %q", kind, seen.Method, seen.URI, seen.Header.Get("Content-Type"), seen.Body)
		}
		atkCheckIdentity(t, kind+" one-click", seen, map[string]string{"X-User-ID": fmt.Sprint(u.ID)})
		if resp := oneClick(); resp.StatusCode != http.StatusGone {
			t.Errorf("%s second one-click: %d, want 410", kind, resp.StatusCode)
		}
		if r.A.up.count() != before+1 {
			t.Errorf("%s second one-click reached the upstream", kind)
		}
		evs := r.waitAudit(1, func(e store.AuditEvent) bool {
			return e.CredentialID == l.JTI && e.Outcome == store.OutcomeRefused
		})
		if evs[0].Reason != "used_up" {
			t.Errorf("%s second one-click audited as %q, want used_up", kind, evs[0].Reason)
		}
		if row, err := r.st.Link(context.Background(), l.JTI); err != nil || row.Uses != 1 {
			t.Errorf("%s: link row %+v %v; want one use", kind, row, err)
		}
	}
}

// atkBurst sends n requests at once, each on its own connection, and counts
// the statuses.
func atkBurst(t *testing.T, s *atkSite, n int, mk func(i int) atkReq) map[int]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rq := mk(i)
			<-start
			resp, err := s.sendE(rq)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			statuses[resp.StatusCode]++
		}(i)
	}
	close(start)
	wg.Wait()
	return statuses
}

// 11. A burst of wrong guesses at once gets no more evaluations than the
// throttle allows: attempts are counted before they are checked.
func atkBurstThrottle(t *testing.T, r *atkRig) {
	const n, limit = 60, 10
	statuses := atkBurst(t, r.A, n, func(i int) atkReq {
		return atkReq{Method: http.MethodPost, Target: "/.latchkey/login", Header: atkPairs("Content-Type", "application/x-www-form-urlencoded"),
			Body: url.Values{"code": {fmt.Sprintf("ZZZZZZ%03d", i)}}.Encode()}
	})
	if statuses[http.StatusUnauthorized] > limit || statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != n {
		t.Errorf("invite code burst: statuses %v; want at most %d 401s and the rest 429", statuses, limit)
	}
	evs := r.waitAudit(n, func(e store.AuditEvent) bool { return e.Kind == "invite" && e.Path == "/.latchkey/login" })
	evaluated := 0
	for _, e := range evs {
		if e.Reason != "throttled" {
			evaluated++
		}
	}
	if evaluated > limit || evaluated == 0 {
		t.Errorf("invite code burst: %d codes evaluated (audited with a reason other than throttled), want 1 to %d", evaluated, limit)
	}

	tk := r.ticket("--place", "louvre", "--purpose", "visit")
	statuses = atkBurst(t, r.A, n, func(i int) atkReq {
		return atkReq{Target: fmt.Sprintf("/louvre/room?uuid=%s&password=wrong%03d", tk.UUID, i)}
	})
	if statuses[http.StatusForbidden] > limit || statuses[http.StatusForbidden]+statuses[http.StatusTooManyRequests] != n {
		t.Errorf("ticket password burst: statuses %v; want at most %d 403s and the rest 429", statuses, limit)
	}
	tevs := r.waitAudit(n, func(e store.AuditEvent) bool { return e.Kind == "ticket" && e.CredentialID == tk.UUID })
	evaluated = 0
	for _, e := range tevs {
		if e.Reason != "throttled" {
			evaluated++
			if e.Reason != "bad_password" {
				t.Errorf("ticket guess audited as %q", e.Reason)
			}
		}
	}
	if evaluated > limit || evaluated == 0 {
		t.Errorf("ticket password burst: %d passwords evaluated, want 1 to %d", evaluated, limit)
	}
	if row, err := r.st.Ticket(context.Background(), tk.UUID); err != nil || row.State != store.TicketValid {
		t.Errorf("ticket after the burst: %+v %v", row, err)
	}
	if r.A.up.count() != 0 {
		t.Errorf("a guess reached the upstream")
	}
}

// 12. A ticket route takes tickets only: a session or a signed link does
// not get past it.
func atkTicketExclusive(t *testing.T, r *atkRig) {
	u := r.user(r.A.name, "tom@example.com")
	tok, _ := r.session(r.A.name, u)
	l := r.mintLink("--user", "tom@example.com", "--url", r.A.origin+"/louvre/room", "--max-uses", "0")
	_, linkTarget := l.split(t)
	login := r.mintLink("--user", "tom@example.com", "--url", r.A.origin+"/louvre/room", "--mode", "login")
	_, loginTarget := login.split(t)
	// Controls: the session and the link are good where they belong.
	if resp := r.A.get(t, "/elsewhere", atkCookie(tok)...); resp.StatusCode != 200 {
		t.Fatalf("control: the session elsewhere on A: %d", resp.StatusCode)
	}
	before := r.A.up.count()
	cases := []struct {
		name string
		rq   atkReq
	}{
		{"session", atkReq{Target: "/louvre/room", Header: atkPairs(atkCookie(tok)...)}},
		{"session, browser", atkReq{Target: "/louvre/room2", Header: atkPairs("Cookie", "latchkey_session="+tok, "Accept", "text/html")}},
		{"request link", atkReq{Target: linkTarget}},
		{"login link confirmation", atkReq{Method: http.MethodPost, Target: loginTarget, Header: atkPairs("Content-Type", "application/x-www-form-urlencoded"), Body: "latchkey_confirm=1"}},
		{"session and link", atkReq{Target: linkTarget, Header: atkPairs(atkCookie(tok)...)}},
	}
	for _, c := range cases {
		resp := r.A.send(t, c.rq)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s on the ticket route: %d, want 401", c.name, resp.StatusCode)
		}
		if ck := resp.cookie("latchkey_session"); ck != nil && ck.Value != "" {
			t.Errorf("%s on the ticket route set a session cookie", c.name)
		}
	}
	if r.A.up.count() != before {
		t.Errorf("the ticket route let %d requests through without a ticket", r.A.up.count()-before)
	}
	evs := r.waitAudit(len(cases), func(e store.AuditEvent) bool { return e.Kind == "ticket" && strings.HasPrefix(e.Path, "/louvre/") })
	for _, e := range evs {
		if e.Reason != "missing" || e.Status != http.StatusUnauthorized {
			t.Errorf("ticket route refusal audited as %q %d, want missing 401", e.Reason, e.Status)
		}
	}
	for _, id := range []string{l.JTI, login.JTI} {
		if row, err := r.st.Link(context.Background(), id); err != nil || row.Uses != 0 {
			t.Errorf("link %s after the ticket route: %+v %v", id, row, err)
		}
	}
	// Control: a ticket gets through.
	tk := r.ticket("--place", "louvre", "--purpose", "visit")
	if resp := r.A.get(t, "/louvre/room?uuid="+tk.UUID+"&password="+url.QueryEscape(tk.Password)); resp.StatusCode != 200 || r.A.up.count() != before+1 {
		t.Errorf("control: a ticket on the ticket route: %d", resp.StatusCode)
	}
}

// 12b. A route that names tickets and another credential without `also`
// does not load, from a Caddyfile or from JSON.
func TestAttackTicketRouteWithLinkDoesNotLoad(t *testing.T) {
	dir := t.TempDir()
	for _, other := range []string{"link", "invite"} {
		cf := fmt.Sprintf(`{
	admin off
	auto_https off
	storage file_system %s/caddy
	log {
		output discard
	}
	latchkey {
		storage sqlite %s/latchkey.db
		secret %s
	}
}
http://127.0.0.1:%d {
	latchkey {
		ticket louvre visit
		%s
	}
	respond "inside"
}
`, dir, dir, testSecret, freePort(t), other)
		adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
		if err == nil {
			err = caddy.Load(adapted, true)
			if err == nil {
				caddy.Stop()
			}
		}
		if err == nil || !strings.Contains(err.Error(), "also "+other) {
			t.Errorf("ticket and %s on one route without `also %s`: error %v, want one that says to add `also %s`", other, other, err, other)
		}
		// Control: with `also`, it loads.
		ok := strings.Replace(cf, "\t\t"+other+"\n", "\t\t"+other+"\n\t\ttickets {\n\t\t\talso "+other+"\n\t\t}\n", 1)
		adapted, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(ok), nil)
		if err != nil {
			t.Fatalf("control: with also %s: %v", other, err)
		}
		if err := caddy.Load(adapted, true); err != nil {
			t.Fatalf("control: with also %s: %v", other, err)
		}
		if err := caddy.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	// JSON, which skips the Caddyfile's checks.
	cfg := fmt.Sprintf(`{
		"admin": {"disabled": true},
		"storage": {"module": "file_system", "root": %q},
		"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
		"apps": {
			"latchkey": {"storage": {"driver": "sqlite", "path": %q}, "secret": %q},
			"http": {"servers": {"s": {"listen": ["127.0.0.1:%d"], "automatic_https": {"disable": true}, "routes": [{"handle": [
				{"handler": "latchkey", "tickets": {"accept": [{"place": "louvre", "purpose": "visit"}]}, "link": {}},
				{"handler": "static_response", "body": "inside"}
			]}]}}}
		}
	}`, dir+"/caddy", dir+"/json.db", testSecret, freePort(t))
	err := caddy.Load([]byte(cfg), true)
	if err == nil {
		caddy.Stop()
	}
	if err == nil || !strings.Contains(err.Error(), "also link") {
		t.Errorf("JSON route with tickets and link: error %v, want one that says to add `also link`", err)
	}
}

// 13. With handle_errors, a refusal goes through the server's error routes
// with its status and reason; without, the gateway's page answers.
func atkHandleErrors(t *testing.T, r *atkRig) {
	u := r.user(r.A.name, "hal@example.com")
	tokA, _ := r.session(r.A.name, u)
	cases := []struct {
		name   string
		rq     atkReq
		status int
		reason string
	}{
		{"no credential", atkReq{Target: "/x"}, 401, "missing"},
		{"another site's session", atkReq{Target: "/y", Header: atkPairs(atkCookie(tokA)...)}, 401, "wrong_site"},
		{"forged link", atkReq{Target: "/z?token=not.a.jwt"}, 401, "bad_signature"},
		{"wrong invite code", atkReq{Method: http.MethodPost, Target: "/.latchkey/login", Header: atkPairs("Content-Type", "application/x-www-form-urlencoded"), Body: "code=ZZZZZZ999"}, 401, "invalid_code"},
		{"cross-site invite code", atkReq{Method: http.MethodPost, Target: "/.latchkey/login", Header: atkPairs("Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site"), Body: "code=ZZZZZZ999"}, 403, "cross_origin"},
	}
	for _, c := range cases {
		resp := r.C.send(t, c.rq)
		want := fmt.Sprintf("custom %d %s", c.status, c.reason)
		if resp.StatusCode != c.status || strings.TrimSpace(string(resp.Body)) != want {
			t.Errorf("%s on C (handle_errors): %d %q, want %d %q", c.name, resp.StatusCode, resp.Body, c.status, want)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s on C: the refusal through handle_errors lost Cache-Control: no-store (%v)", c.name, resp.Header)
		}
	}
	r.waitRefusal(t, nil, "/x", "missing")
	// Without handle_errors: the gateway's own page.
	resp := r.A.get(t, "/x")
	if resp.StatusCode != 401 || bytes.HasPrefix(resp.Body, []byte("custom")) || !bytes.Contains(resp.Body, []byte("You need to sign in")) {
		t.Errorf("A without handle_errors: %d %q, want the gateway's 401 page", resp.StatusCode, resp.Body)
	}
	if r.C.up.count()+r.A.up.count() != 0 {
		t.Error("a refusal reached an upstream")
	}
}

// 14. The session cookie is Secure when a trusted proxy says the browser
// used HTTPS, and only then.
func atkSecureCookie(trusted bool) func(t *testing.T, r *atkRig) {
	return func(t *testing.T, r *atkRig) {
		r.user(r.A.name, "sec@example.com")
		for _, https := range []bool{true, false} {
			var hdr []string
			if https {
				hdr = []string{"X-Forwarded-Proto", "https"}
			}
			code, _ := r.invite(r.A.name, fmt.Sprintf("sec%v@example.com", https))
			resp, _ := r.loginWithCode(t, r.A, code, hdr...)
			if got, want := resp.cookie("latchkey_session").Secure, trusted && https; got != want {
				t.Errorf("invite login, trusted proxy %v, X-Forwarded-Proto https %v: Secure %v, want %v", trusted, https, got, want)
			}
			l := r.mintLink("--user", "sec@example.com", "--url", r.A.origin+"/in", "--mode", "login")
			_, target := l.split(t)
			resp = r.A.send(t, atkReq{Method: http.MethodPost, Target: target, Header: append(atkPairs("Content-Type", "application/x-www-form-urlencoded"), atkPairs(hdr...)...), Body: "latchkey_confirm=1"})
			c := resp.cookie("latchkey_session")
			if resp.StatusCode != http.StatusSeeOther || c == nil {
				t.Fatalf("magic link login: %d %v", resp.StatusCode, resp.Header)
			}
			if got, want := c.Secure, trusted && https; got != want {
				t.Errorf("magic link login, trusted proxy %v, X-Forwarded-Proto https %v: Secure %v, want %v", trusted, https, got, want)
			}
		}
	}
}

// 15. More of what an attacker would try.
func atkMore(t *testing.T, r *atkRig) {
	ctx := context.Background()
	alice := r.user(r.A.name, "alice@example.com")
	global := r.user("", "gil@example.com")
	bob := r.user(r.B.name, "bob@example.com")
	tokA, _ := r.session(r.A.name, alice)

	t.Run("a link of site A used on B's host", func(t *testing.T) {
		l := r.mintLink("--user", "alice@example.com", "--url", r.A.origin+"/promo", "--max-uses", "0")
		_, target := l.split(t)
		if resp := r.B.get(t, target); resp.StatusCode != http.StatusForbidden {
			t.Errorf("on B: %d, want 403", resp.StatusCode)
		}
		r.waitRefusal(t, r.B, "/promo", "wrong_target")
		// The catch-all C, sent A's Host so that the link's host matches:
		// the user belongs to A.
		if resp := r.C.send(t, atkReq{Target: target, Host: r.A.host}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("on C with A's Host: %d, want 403", resp.StatusCode)
		}
		r.waitAudit(1, func(e store.AuditEvent) bool {
			return e.CredentialID == l.JTI && e.Reason == "wrong_site" && e.Host == r.A.host
		})
		// A user of every site: the link's row belongs to A.
		gl := r.mintLink("--user", "gil@example.com", "--url", r.A.origin+"/promo2", "--max-uses", "0")
		_, gtarget := gl.split(t)
		if resp := r.C.send(t, atkReq{Target: gtarget, Host: r.A.host}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a global user's link of A on C with A's Host: %d, want 403", resp.StatusCode)
		}
		r.waitAudit(1, func(e store.AuditEvent) bool { return e.CredentialID == gl.JTI && e.Reason == "wrong_site" })
		if resp := r.A.get(t, gtarget); resp.StatusCode != 200 {
			t.Errorf("control: the global user's link on A: %d", resp.StatusCode)
		}
		// A link an app minted itself (no row yet) for A's user: the user
		// belongs to A, so C refuses it before it is recorded anywhere.
		raw, info, err := mint.New(r.secret).Link(mint.Options{UserID: alice.ID, URL: r.A.origin + "/offline", Unlimited: true})
		if err != nil {
			t.Fatal(err)
		}
		ou, _ := url.Parse(raw)
		if resp := r.C.send(t, atkReq{Target: ou.RequestURI(), Host: r.A.host}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("an app-minted link of A's user on C with A's Host: %d, want 403", resp.StatusCode)
		}
		r.waitAudit(1, func(e store.AuditEvent) bool { return e.CredentialID == info.JTI && e.Reason == "wrong_site" })
		if resp := r.A.get(t, ou.RequestURI()); resp.StatusCode != 200 {
			t.Errorf("control: the app-minted link on A: %d", resp.StatusCode)
		}
		if r.B.up.count()+r.C.up.count() != 0 {
			t.Error("a link of A reached B's or C's upstream")
		}
	})

	t.Run("an invite refusal page says nothing of the code", func(t *testing.T) {
		revokedCode, revoked := r.invite(r.A.name, "rev@example.com")
		if err := r.st.RevokeInvite(ctx, revoked.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		otherSite, _ := r.invite(r.B.name, "elsewhere@example.com")
		bodies := map[string]string{}
		for name, code := range map[string]string{"unknown": "ZZZZZZ999", "of another site": otherSite, "revoked": revokedCode} {
			resp := r.A.postForm(t, "/.latchkey/login", url.Values{"code": {code}})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s code: %d, want 401", name, resp.StatusCode)
			}
			bodies[name] = string(resp.Body)
		}
		if bodies["unknown"] != bodies["of another site"] || bodies["unknown"] != bodies["revoked"] {
			t.Errorf("the login page answers an unknown code, a revoked one and one of another site differently")
		}
	})

	t.Run("logout on one route ends the session on every route of the site; GET does not log out", func(t *testing.T) {
		u := r.user(r.A.name, "out@example.com")
		tok, _ := r.session(r.A.name, u)
		if resp := r.A.get(t, "/custom/warm", atkCookie(tok)...); resp.StatusCode != 200 {
			t.Fatalf("control: %d", resp.StatusCode)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r.A.send(t, atkReq{Method: m, Target: "/.latchkey/logout", Header: atkPairs(atkCookie(tok)...)})
		}
		if resp := r.A.get(t, "/custom/after-get", atkCookie(tok)...); resp.StatusCode != 200 {
			t.Errorf("GET of the logout page ended the session: %d", resp.StatusCode)
		}
		if resp := r.A.postForm(t, "/.latchkey/logout", nil, atkCookie(tok)...); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		for _, p := range []string{"/custom/after", "/after", "/unsubscribe/after"} {
			if resp := r.A.get(t, p, atkCookie(tok)...); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s after logout: %d, want 401", p, resp.StatusCode)
			}
		}
	})

	t.Run("markup in next and in a link's query", func(t *testing.T) {
		xss := `"><script>alert(1)</script>`
		page := r.A.get(t, "/.latchkey/login?next="+url.QueryEscape("/?x="+xss))
		if page.StatusCode != 200 || bytes.Contains(page.Body, []byte("<script>alert(1)")) {
			t.Errorf("login page with markup in next: %d, markup unescaped: %v", page.StatusCode, bytes.Contains(page.Body, []byte("<script>alert(1)")))
		}
		l := r.mintLink("--user", "alice@example.com", "--url", r.A.origin+"/unsubscribe/news")
		_, target := l.split(t)
		for _, q := range []string{"&x=" + url.QueryEscape(xss), "&x=" + xss, "&" + url.QueryEscape(xss) + "=1"} {
			resp := r.A.get(t, target+q)
			if resp.StatusCode == 200 && bytes.Contains(resp.Body, []byte("<script>alert(1)")) {
				t.Errorf("the confirmation page shows the query's markup unescaped (%q)", q)
			}
		}
	})

	t.Run("an invite code of A typed on B and on C", func(t *testing.T) {
		code, inv := r.invite(r.A.name, "ivy@example.com")
		// Identical refusals (client, reason, kind, host) within a second
		// are one record, with the first one's credential id: count the
		// wrong_site attempts on the two hosts.
		wrongSite := func(e store.AuditEvent) bool {
			return e.Kind == "invite" && e.Reason == "wrong_site" && (e.Host == r.A.host || e.Host == r.B.host)
		}
		before := attempts(r.audit(wrongSite))
		if resp := r.B.postForm(t, "/.latchkey/login", url.Values{"code": {code}}); resp.StatusCode != http.StatusUnauthorized || resp.cookie("latchkey_session") != nil {
			t.Errorf("A's code on B: %d", resp.StatusCode)
		}
		if resp := r.C.send(t, atkReq{Method: http.MethodPost, Target: "/.latchkey/login", Host: r.A.host,
			Header: atkPairs("Content-Type", "application/x-www-form-urlencoded"), Body: url.Values{"code": {code}}.Encode()}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("A's code on C with A's Host: %d", resp.StatusCode)
		}
		r.waitAudit(before+2, wrongSite)
		for _, e := range r.audit(func(e store.AuditEvent) bool { return e.Kind == "invite" && e.CredentialID == fmt.Sprint(inv.ID) }) {
			if e.Reason != "wrong_site" {
				t.Errorf("A's code elsewhere audited as %q, want wrong_site", e.Reason)
			}
		}
		if got, _ := r.st.Invite(ctx, inv.ID); got.UseCount != 0 {
			t.Errorf("A's code was used by another site: %+v", got)
		}
		r.loginWithCode(t, r.A, code) // control
	})

	t.Run("sessions of C on A, of a deactivated user, planted before a login", func(t *testing.T) {
		tokC, _ := r.session(r.C.name, global)
		if resp := r.A.get(t, "/from-c", atkCookie(tokC)...); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("C's session on A: %d", resp.StatusCode)
		}
		r.waitRefusal(t, r.A, "/from-c", "wrong_site")
		gone := r.user(r.A.name, "gone@example.com")
		tokGone, _ := r.session(r.A.name, gone)
		if err := r.st.SetUserActive(ctx, gone.ID, false); err != nil {
			t.Fatal(err)
		}
		resp := r.A.get(t, "/deactivated", atkCookie(tokGone)...)
		if c := resp.cookie("latchkey_session"); resp.StatusCode != http.StatusUnauthorized || c == nil || c.MaxAge >= 0 {
			t.Errorf("a deactivated user's session: %d, cookie %v; want 401 and the cookie cleared", resp.StatusCode, c)
		}
		r.waitRefusal(t, r.A, "/deactivated", "inactive_user")
		// Session fixation: a cookie planted by an attacker is replaced,
		// not upgraded, by the victim's login.
		mallory := r.user(r.A.name, "mallory@example.com")
		planted, _ := r.session(r.A.name, mallory)
		code, _ := r.invite(r.A.name, "victim@example.com")
		_, fresh := r.loginWithCode(t, r.A, code, atkCookie(planted)...)
		if fresh == planted {
			t.Fatal("the login kept the planted session cookie")
		}
		r.A.get(t, "/planted", atkCookie(planted)...)
		if got := r.A.up.last(t).Header.Get("X-User-ID"); got != fmt.Sprint(mallory.ID) {
			t.Errorf("the planted session now acts as user %q, want mallory %d", got, mallory.ID)
		}
	})

	t.Run("a user of B asks A for a sign-in link", func(t *testing.T) {
		resp := r.A.postForm(t, "/.latchkey/login", url.Values{"email": {bob.Email}})
		if resp.StatusCode != 200 {
			t.Fatalf("email form: %d", resp.StatusCode)
		}
		e := r.waitAudit(1, func(e store.AuditEvent) bool {
			return e.Kind == "link" && e.Path == "/.latchkey/login" && e.Host == r.A.host
		})[0]
		if e.Reason != "no_account" || e.Outcome != store.OutcomeRefused {
			t.Errorf("B's user asking A: audited %q %q, want refused no_account", e.Outcome, e.Reason)
		}
		// Control through the same path: the address on its own site.
		r.B.postForm(t, "/.latchkey/login", url.Values{"email": {bob.Email}})
		m := r.waitMail(t, bob.Email, 1)
		atkCheckMailOrigin(t, m, r.B.origin)
		if n := r.mailsTo(bob.Email); n != 1 {
			t.Errorf("%d mails to B's user, want only the one B sent", n)
		}
	})

	t.Run("header injection into the invite mail", func(t *testing.T) {
		boss := r.user(r.A.name, "chief@example.com", store.Role{Site: r.A.name, Name: "staff"})
		tok, _ := r.session(r.A.name, boss)
		resp := r.A.postForm(t, "/.latchkey/invite", url.Values{"email": {"inj@example.com"}, "name": {"Eve\r\nBcc: mallory@evil.example\r\nSubject: pwned"}}, atkCookie(tok)...)
		if resp.StatusCode != 200 {
			t.Fatalf("staff invite: %d", resp.StatusCode)
		}
		m := r.waitMail(t, "inj@example.com", 1)
		if len(m.To) != 1 {
			t.Errorf("invite mail recipients %v, want only the invitee", m.To)
		}
		if m.Header.Get("Bcc") != "" || strings.Contains(m.Header.Get("Subject"), "pwned") {
			t.Errorf("the name injected headers: %v", m.Header)
		}
		if r.mailsTo("mallory@evil.example") != 0 {
			t.Error("the name added a recipient")
		}
		if resp := r.A.postForm(t, "/.latchkey/invite", url.Values{"email": {"x@example.com\r\nBcc: mallory@evil.example"}}, atkCookie(tok)...); resp.StatusCode == 200 && r.mailsTo("mallory@evil.example") != 0 {
			t.Error("the address added a recipient")
		}
	})

	t.Run("oversized and repeated values", func(t *testing.T) {
		before := r.A.up.count()
		if resp := r.A.get(t, "/big", "Cookie", "latchkey_session="+strings.Repeat("A", 8000)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("8000-byte cookie: %d", resp.StatusCode)
		}
		if resp := r.A.get(t, "/big?token="+strings.Repeat("e", 16000)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("16000-byte token: %d", resp.StatusCode)
		}
		if resp := r.A.get(t, "/big2", "Cookie", "latchkey_session="+tokA, "X-User-ID", strings.Repeat("9", 4000), "x_user_id", strings.Repeat("8", 4000)); resp.StatusCode != 200 {
			t.Errorf("4000-byte forged header with a session: %d", resp.StatusCode)
		} else if got := atkHeaderValues(r.A.up.last(t).Header, "X-User-ID"); len(got) != 1 || got[0] != fmt.Sprint(alice.ID) {
			t.Errorf("upstream X-User-ID %d values", len(got))
		}
		code, _ := r.invite(r.A.name, "long@example.com")
		if resp := r.A.postForm(t, "/.latchkey/login", url.Values{"code": {code}, "next": {"/" + strings.Repeat("a", 20000)}}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("20000-byte next: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// A second token: whichever the gateway reads, none reaches the
		// upstream.
		l := r.mintLink("--user", "alice@example.com", "--url", r.A.origin+"/dup", "--max-uses", "0")
		token, _ := l.split(t)
		for _, q := range []string{"token=" + token + "&token=forged", "token=forged&token=" + token, "token=" + token + "&TOKEN=x&token%3d=y"} {
			r.A.get(t, "/dup?"+q)
		}
		for _, s := range r.A.up.all()[before:] {
			if strings.Contains(strings.ToLower(s.URI), "token=") && strings.Contains(s.URI, token) {
				t.Errorf("upstream got the token in %q", s.URI)
			}
		}
	})

	t.Run("forged tokens and ticket parameters twice", func(t *testing.T) {
		before := r.A.up.count()
		l := r.mintLink("--user", "alice@example.com", "--url", r.A.origin+"/p", "--max-uses", "0")
		tok, _ := l.split(t)
		parts := strings.Split(tok, ".")
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"default","typ":"JWT"}`))
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		other := base64.RawURLEncoding.EncodeToString(bytes.Replace(claims, []byte(`"sub":"`+fmt.Sprint(alice.ID)+`"`), []byte(`"sub":"`+fmt.Sprint(global.ID)+`"`), 1))
		for _, forged := range []string{none + "." + parts[1] + ".", none + "." + parts[1], parts[0] + "." + parts[1] + ".", parts[0] + "." + other + "." + parts[2]} {
			if resp := r.A.get(t, "/p?token="+forged); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("forged token %q: %d, want 401", forged, resp.StatusCode)
			}
		}
		if r.A.up.count() != before {
			t.Fatal("a forged token reached the upstream")
		}
		if resp := r.A.get(t, "/p?token="+tok); resp.StatusCode != 200 {
			t.Errorf("control: the genuine token: %d", resp.StatusCode)
		}
		for _, mk := range []func(uuid, pw string) atkReq{
			func(uuid, pw string) atkReq {
				return atkReq{Target: "/louvre/room?uuid=" + uuid + "&password=" + pw + "&password=x&uuid=" + uuid}
			},
			func(uuid, pw string) atkReq {
				return atkReq{Method: http.MethodPost, Target: "/louvre/room?uuid=" + uuid + "&password=" + pw,
					Header: atkPairs("Content-Type", "application/x-www-form-urlencoded"), Body: "password=" + pw + "&uuid=" + uuid + "&x=1&password=again"}
			},
		} {
			tk := r.ticket("--place", "louvre", "--purpose", "visit")
			rq := mk(tk.UUID, url.QueryEscape(tk.Password))
			if resp := r.A.send(t, rq); resp.StatusCode != 200 {
				t.Errorf("ticket %s %s: %d", rq.Method, rq.Target, resp.StatusCode)
				continue
			}
			seen := r.A.up.last(t)
			if strings.Contains(seen.URI+string(seen.Body), tk.Password) || strings.Contains(seen.URI+string(seen.Body), "password") {
				t.Errorf("ticket %s %s: upstream got %s %q", rq.Method, rq.Target, seen.URI, seen.Body)
			}
		}
	})

	t.Run("the JWKS publishes no HMAC key", func(t *testing.T) {
		resp := r.A.get(t, "/.latchkey/jwks.json")
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(resp.Body, &set); err != nil {
				t.Fatalf("JWKS %q: %v", resp.Body, err)
			}
		}
		for _, k := range set.Keys {
			if _, ok := k["k"]; ok || k["kty"] == "oct" {
				t.Errorf("the JWKS publishes a symmetric key: %v", k)
			}
		}
		if bytes.Contains(resp.Body, []byte(testSecret)) {
			t.Error("the JWKS contains the secret")
		}
	})
}
