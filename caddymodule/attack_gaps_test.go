package caddymodule_test

// Attacks the first round of the attack suite found getting through, each
// now closed: an app's link on another listener's catch-all site, route and
// method override headers on path-bound links, a staff code taking an
// account created after it, and a JSON refusal telling which codes exist.

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/mint"
)

// A link an app minted for a user of every site, for a URL on A, sent to the
// catch-all site C (another listener) with A's Host: C must not take it,
// nor record it as C's.
func TestAttackGapOfflineLinkOnCatchAll(t *testing.T) {
	r := startAtkRig(t, atkOpts{})
	gil := r.user("", "gil@example.com")
	raw, info, err := mint.New(r.secret).Link(mint.Options{UserID: gil.ID, URL: r.A.origin + "/offline", Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(raw)
	resp := r.C.send(t, atkReq{Target: u.RequestURI(), Host: r.A.host})
	if resp.StatusCode != http.StatusForbidden || r.C.up.count() != 0 {
		t.Errorf("GET %s with Host %s on C's port %d: %d, C's upstream got %d requests (X-Shop-User %q); want 403 and nothing upstream",
			u.RequestURI(), r.A.host, r.C.port, resp.StatusCode, r.C.up.count(), func() string {
				if r.C.up.count() > 0 {
					return r.C.up.last(t).Header.Get("X-Shop-User")
				}
				return ""
			}())
	}
	if resp := r.A.get(t, u.RequestURI()); resp.StatusCode != 200 {
		t.Errorf("the link on A afterwards: %d, want 200 (C burned it)", resp.StatusCode)
	}
	if row, err := r.st.Link(t.Context(), info.JTI); err == nil && row.Site != r.A.name {
		t.Errorf("the link's row belongs to site %q, want %q", row.Site, r.A.name)
	}
}

// A link bound to /unsubscribe/ must not carry headers with which common
// upstreams route the request elsewhere or change its method.
func TestAttackGapRewriteHeadersOnPathBoundLinks(t *testing.T) {
	r := startAtkRig(t, atkOpts{})
	r.user(r.A.name, "alice@example.com")
	l := r.mintLink("--user", "alice@example.com", "--url", r.A.origin+"/unsubscribe/news", "--max-uses", "0")
	_, target := l.split(t)
	rewrite := []string{"X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri", "X-Forwarded-Path", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}
	var hdr []string
	for _, h := range rewrite {
		v := "/admin"
		if h == "X-HTTP-Method-Override" || h == "X-HTTP-Method" || h == "X-Method-Override" {
			v = "DELETE"
		}
		hdr = append(hdr, h, v)
	}
	if resp := r.A.get(t, target, hdr...); resp.StatusCode != 200 {
		t.Fatalf("link: %d", resp.StatusCode)
	}
	seen := r.A.up.last(t)
	for _, h := range rewrite {
		if v := atkHeaderValues(seen.Header, h); len(v) != 0 {
			t.Errorf("GET %s with %s set: the upstream got %s = %q with a link bound to /unsubscribe/", target, h, h, v)
		}
	}
	one := r.mintLink("--user", "alice@example.com", "--url", r.A.origin+"/unsubscribe/x")
	_, target = one.split(t)
	resp := r.A.send(t, atkReq{Method: http.MethodPost, Target: target, Header: atkPairs("Content-Type", "application/x-www-form-urlencoded"), Body: "List-Unsubscribe=One-Click&_method=DELETE"})
	if resp.StatusCode == 200 {
		if seen := r.A.up.last(t); string(seen.Body) != "List-Unsubscribe=One-Click" {
			t.Errorf("POST %s with body %q: the one-click reached the upstream with %q (Rails, Laravel: DELETE)", target, "List-Unsubscribe=One-Click&_method=DELETE", seen.Body)
		}
	}
}

// The staff page never hands over an account, also when the account
// appears after the invite was made: a code staff saw for an address that
// had no account must not log into the account made for it since.
func TestAttackGapStaffInviteCodeTakesLaterAccount(t *testing.T) {
	r := startAtkRig(t, atkOpts{noSMTP: true})
	boss := r.user(r.A.name, "boss@example.com", store.Role{Site: r.A.name, Name: "staff"})
	tok, _ := r.session(r.A.name, boss)
	resp := r.A.postForm(t, "/.latchkey/invite", url.Values{"email": {"later@example.com"}}, atkCookie(tok)...)
	m := regexp.MustCompile(`id="code"[^>]*>([A-Z0-9]+)<`).FindSubmatch(resp.Body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("staff page: %d, no code shown:\n%s", resp.StatusCode, resp.Body)
	}
	code := string(m[1])
	// The address gets an account another way (the operator, another
	// invite), and uses it.
	later := r.user(r.A.name, "later@example.com")
	// The staff member types the code they were shown.
	resp = r.A.postForm(t, "/.latchkey/login", url.Values{"code": {code}})
	if c := resp.cookie("latchkey_session"); resp.StatusCode == http.StatusSeeOther && c != nil {
		r.A.get(t, "/whoami", atkCookie(c.Value)...)
		if got := r.A.up.last(t).Header.Get("X-User-ID"); got == fmt.Sprint(later.ID) {
			t.Errorf("staff user %d typed the code the staff page showed for later@example.com (invited before the account existed) at POST /.latchkey/login: signed in as the account user %d", boss.ID, later.ID)
		}
	}
}

// "One message for every refusal, so that the page does not tell a guesser
// which codes exist": the JSON answer says it all the same.
func TestAttackGapInviteRefusalJSONReason(t *testing.T) {
	r := startAtkRig(t, atkOpts{})
	otherSite, _ := r.invite(r.B.name, "elsewhere@example.com")
	bodies := map[string]string{}
	for name, code := range map[string]string{"unknown": "ZZZZZZ999", "of another site": otherSite} {
		resp := r.A.postForm(t, "/.latchkey/login", url.Values{"code": {code}}, "Accept", "application/json")
		bodies[name] = fmt.Sprintf("%d %s", resp.StatusCode, resp.Body)
	}
	if bodies["unknown"] != bodies["of another site"] {
		t.Errorf("POST /.latchkey/login (Accept: application/json) on A: an unknown code gets %q, a code of site B gets %q: a guesser learns which codes exist, and where to use them", bodies["unknown"], bodies["of another site"])
	}
}
