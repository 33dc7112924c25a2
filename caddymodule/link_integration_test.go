package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
	"github.com/latchkeyhq/latchkey/internal/store"
)

type mintedLink struct {
	JTI     string            `json:"jti"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
}

func (g *gateway) mintLink(o gwOpts, args ...string) mintedLink {
	g.t.Helper()
	out := g.cli(o, append([]string{"links", "create", "--json"}, args...)...)
	var l mintedLink
	if err := json.Unmarshal([]byte(out), &l); err != nil || l.URL == "" {
		g.t.Fatalf("links create output %q: %v", out, err)
	}
	return l
}

func (g *gateway) send(method, rawURL, body string, hdr map[string]string) *http.Response {
	g.t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", firefoxUA)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return g.do(req)
}

func TestUnsubscribeLinkRequestMode(t *testing.T) {
	o := gwOpts{handler: "link"}
	g := startGateway(t, o)
	u := g.user("leonard@example.com")
	l := g.mintLink(o, "--user", "leonard@example.com", "--url", g.url+"/unsubscribe?list=news", "--data", `{"list":"news","name":"Léonard"}`)

	// A mail scanner's GET (or HEAD) uses nothing: it gets the button.
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		resp := g.send(m, l.URL, "", nil)
		if resp.StatusCode != 200 || g.upstream.count() != 0 {
			t.Fatalf("%s of a one-use link: %d, upstream saw %d; want the confirmation page and nothing upstream", m, resp.StatusCode, g.upstream.count())
		}
		if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("confirmation page headers %v", resp.Header)
		}
	}
	if row, err := g.st.Link(t.Context(), l.JTI); err != nil || row.Uses != 0 {
		t.Fatalf("after the prefetches, link row %+v %v; want no use", row, err)
	}
	// The button posts back to the link; the upstream sees the link's GET.
	resp := g.send(http.MethodPost, l.URL, "latchkey_confirm=1", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("unsubscribe link confirmed: %d", resp.StatusCode)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("response headers %v", resp.Header)
	}
	if len(resp.Cookies()) != 0 {
		t.Errorf("request mode set a cookie: %v", resp.Cookies())
	}
	seen := g.upstream.last(t)
	if seen.Get("X-User-ID") != fmt.Sprint(u.ID) {
		t.Errorf("upstream X-User-ID %q, want %d", seen.Get("X-User-ID"), u.ID)
	}
	var data map[string]string
	if err := json.Unmarshal([]byte(seen.Get("X-Latchkey-Link-Data")), &data); err != nil || data["name"] != "Léonard" || data["list"] != "news" {
		t.Errorf("link data %q: %v", seen.Get("X-Latchkey-Link-Data"), err)
	}
	g.upstream.mu.Lock()
	uri := g.upstream.uris[len(g.upstream.uris)-1]
	g.upstream.mu.Unlock()
	if uri != "/unsubscribe?list=news" {
		t.Errorf("upstream got %q, want the URL without the token", uri)
	}

	// max_uses 1: the second use is refused.
	if r := g.send(http.MethodGet, l.URL, "", nil); r.StatusCode != http.StatusGone {
		t.Errorf("second use: %d, want 410", r.StatusCode)
	}
	g.waitAudit(store.AuditFilter{Kind: "link", Outcome: store.OutcomeRefused}, 1) // refusals are batched
	out := g.cli(o, "links", "show", l.JTI, "--json")
	var shown struct {
		Uses    int `json:"uses"`
		UsesLog []struct {
			Outcome  string `json:"outcome"`
			Reason   string `json:"reason"`
			ClientIP string `json:"client_ip"`
			Browser  string `json:"browser"`
			Status   int    `json:"status"`
		} `json:"uses_log"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Uses != 1 || len(shown.UsesLog) < 2 {
		t.Fatalf("links show: %s", out)
	}
	var accepted, usedUp bool
	for _, e := range shown.UsesLog {
		if e.Outcome == store.OutcomeAccepted && e.Status == 200 && e.ClientIP == "127.0.0.1" && e.Browser == "Firefox" {
			accepted = true
		}
		if e.Outcome == store.OutcomeRefused && e.Reason == "used_up" && e.Status == http.StatusGone {
			usedUp = true
		}
	}
	if !accepted || !usedUp {
		t.Errorf("links show lacks the use (IP, browser, upstream status) or the refusal:\n%s", out)
	}
}

func TestOneClickUnsubscribePost(t *testing.T) {
	o := gwOpts{handler: "link"}
	g := startGateway(t, o)
	g.user("ann@example.com")
	l := g.mintLink(o, "--user", "ann@example.com", "--url", g.url+"/unsubscribe")
	if r := g.send(http.MethodPost, l.URL, "foo=bar", nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST that is not one-click: %d, want 403", r.StatusCode)
	}
	// What a mail client does with the mail headers the link came with.
	if l.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" || l.Headers["List-Unsubscribe"] != "<"+l.URL+">" {
		t.Fatalf("links create --json headers = %v", l.Headers)
	}
	target := strings.TrimSuffix(strings.TrimPrefix(l.Headers["List-Unsubscribe"], "<"), ">")
	if r := g.send(http.MethodPost, target, l.Headers["List-Unsubscribe-Post"], nil); r.StatusCode != 200 {
		t.Fatalf("RFC 8058 one-click POST: %d", r.StatusCode)
	}
	if g.upstream.count() != 1 {
		t.Fatalf("upstream got %d requests", g.upstream.count())
	}
}

func TestMagicLinkLoginWithConfirmation(t *testing.T) {
	o := gwOpts{handler: "link"}
	g := startGateway(t, o)
	u := g.user("max@example.com")
	l := g.mintLink(o, "--user", "max@example.com", "--url", g.url+"/dashboard?tab=1", "--mode", "login")

	// A scanner's GET sees a page with a button, and uses nothing.
	for i := 0; i < 3; i++ {
		r := g.send(http.MethodGet, l.URL, "", nil)
		if r.StatusCode != 200 || r.Header.Get("Referrer-Policy") != "no-referrer" || len(r.Cookies()) != 0 {
			t.Fatalf("GET of a login link: %d %v", r.StatusCode, r.Header)
		}
	}
	if g.upstream.count() != 0 {
		t.Fatal("the confirmation page reached the upstream")
	}
	if row, err := g.st.Link(t.Context(), l.JTI); err != nil || row.Uses != 0 {
		t.Fatalf("after GETs: %+v %v", row, err)
	}
	resp := g.send(http.MethodPost, l.URL, "latchkey_confirm=1", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard?tab=1" {
		t.Fatalf("confirming: %d Location %q, want 303 to the clean URL", resp.StatusCode, resp.Header.Get("Location"))
	}
	token := sessionCookie(t, resp)
	if r := g.get("/dashboard?tab=1", cookie(token)); r.StatusCode != 200 {
		t.Fatalf("with the session: %d", r.StatusCode)
	}
	if got := g.upstream.last(t).Get("X-User-ID"); got != fmt.Sprint(u.ID) {
		t.Errorf("upstream X-User-ID %q, want %d", got, u.ID)
	}
	if r := g.send(http.MethodPost, l.URL, "latchkey_confirm=1", nil); r.StatusCode != http.StatusGone {
		t.Errorf("second use of the magic link: %d, want 410", r.StatusCode)
	}
	// Opened again by the user it signed in, it leads where it led.
	if r := g.send(http.MethodPost, l.URL, "latchkey_confirm=1", cookie(token)); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard?tab=1" {
		t.Errorf("used link with the user's own session: %d %q, want 303 to the clean URL", r.StatusCode, r.Header.Get("Location"))
	}
}

func TestLinkRefusals(t *testing.T) {
	o := gwOpts{handler: "link"}
	g := startGateway(t, o)
	g.user("rex@example.com")
	off := g.user("off@example.com")
	l := g.mintLink(o, "--user", "rex@example.com", "--url", g.url+"/unsubscribe", "--max-uses", "0")
	offLink := g.mintLink(o, "--user", "off@example.com", "--url", g.url+"/unsubscribe")
	if err := g.st.SetUserActive(t.Context(), off.ID, false); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(l.URL)
	token := u.Query().Get("token")
	tampered := token[:len(token)-4] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, token[len(token)-4:])
	cases := []struct {
		name, url, method string
		status            int
		reason            string
	}{
		{"wrong path", g.url + "/account?token=" + token, http.MethodGet, 403, "wrong_target"},
		{"wrong method", l.URL, http.MethodDelete, 403, "wrong_target"},
		{"tampered", g.url + "/unsubscribe?token=" + tampered, http.MethodGet, 401, "bad_signature"},
		{"garbage", g.url + "/unsubscribe?token=not.a.jwt", http.MethodGet, 401, "bad_signature"},
		{"inactive user", offLink.URL, http.MethodGet, 403, "inactive_user"},
	}
	for _, c := range cases {
		if r := g.send(c.method, c.url, "", nil); r.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, r.StatusCode, c.status)
		}
	}
	if g.upstream.count() != 0 {
		t.Fatal("a refused link reached the upstream")
	}
	// Unlimited uses until revoked.
	for i := 0; i < 3; i++ {
		if r := g.send(http.MethodGet, l.URL, "", nil); r.StatusCode != 200 {
			t.Fatalf("use %d of an unlimited link: %d", i+1, r.StatusCode)
		}
	}
	// The CLI writes the store; the gateway, which has the link's rows in
	// memory, hears of it through the store's fan-out within a second.
	gone := func(what, rawURL string) {
		t.Helper()
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			r := g.send(http.MethodGet, rawURL, "", nil)
			if r.StatusCode == http.StatusGone {
				return
			}
			if r.StatusCode != http.StatusOK || time.Since(start) > time.Second {
				t.Errorf("%s: %d %v after revoking it, want 410 within a second", what, r.StatusCode, time.Since(start))
				return
			}
		}
	}
	g.cli(o, "links", "revoke", l.JTI)
	gone("revoked link", l.URL)
	l2 := g.mintLink(o, "--user", "rex@example.com", "--url", g.url+"/unsubscribe")
	g.cli(o, "links", "revoke", "--user", "rex@example.com")
	gone("link of a user whose links were revoked", l2.URL)
	evs := g.waitAudit(store.AuditFilter{Kind: "link", Outcome: store.OutcomeRefused}, len(cases)+2)
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Reason] += int(max(e.Count, 1))
	}
	for _, c := range cases {
		if reasons[c.reason] == 0 {
			t.Errorf("no refusal audited as %s: %v", c.reason, reasons)
		}
	}
	if reasons["revoked"] != 2 {
		t.Errorf("revocations audited: %v", reasons)
	}
}

// TestConcurrentUsesOfMaxUses3Link fires 200 requests at once with one
// max_uses 3 link: exactly 3 may reach the upstream.
func TestConcurrentUsesOfMaxUses3Link(t *testing.T) {
	// confirm off: every GET uses the link, as an app that opts out of the
	// scanner-safe page would have it.
	o := gwOpts{handler: "link {\n confirm off\n}"}
	g := startGateway(t, o)
	g.user("crowd@example.com")
	l := g.mintLink(o, "--user", "crowd@example.com", "--url", g.url+"/unsubscribe", "--max-uses", "3")
	const n = 200
	statuses := getAtOnce(t, l.URL, n)
	// The per-IP throttle holds attempts in flight, so some of the burst
	// is turned away with 429 before it is checked; none gets through.
	gone, throttled := statuses[http.StatusGone], statuses[http.StatusTooManyRequests]
	if statuses[200] != 3 || gone+throttled != n-3 || g.upstream.count() != 3 {
		t.Fatalf("statuses %v, upstream saw %d; want exactly 3 successes and %d 410s or 429s", statuses, g.upstream.count(), n-3)
	}
	evs := g.waitAudit(store.AuditFilter{Kind: "link", Outcome: store.OutcomeRefused, CredentialID: l.JTI}, gone)
	for _, e := range evs {
		if e.Reason != "used_up" {
			t.Fatalf("refusal audited as %q, want used_up", e.Reason)
		}
	}
	row, err := g.st.Link(t.Context(), l.JTI)
	if err != nil || row.Uses != 3 {
		t.Fatalf("link row: %+v %v", row, err)
	}
}

func TestAskForLoginLinkByEmail(t *testing.T) {
	be := &mailtest.Backend{}
	o := smtpOpts(mailtest.Serve(t, be, nil))
	o.handler = "link"
	g := startGateway(t, o)
	u := g.user("nia@example.com")
	ask := func(email string) *http.Response {
		return g.send(http.MethodPost, g.url+"/.latchkey/login", url.Values{"email": {email}, "next": {"/inbox"}}.Encode(), nil)
	}
	if r := g.get("/.latchkey/login", nil); r.StatusCode != 200 {
		t.Fatalf("login page on a link-only route: %d", r.StatusCode)
	}
	known, unknown := ask("Nia@Example.com"), ask("nobody@example.com")
	if known.StatusCode != 200 || unknown.StatusCode != 200 || known.Header.Get("Content-Length") != unknown.Header.Get("Content-Length") {
		t.Fatalf("answers differ: %d/%s vs %d/%s", known.StatusCode, known.Header.Get("Content-Length"), unknown.StatusCode, unknown.Header.Get("Content-Length"))
	}
	msgs := waitMails(t, be, 1) // sent from the outbox, after the answer
	if len(msgs) != 1 || msgs[0].To[0] != "nia@example.com" {
		t.Fatalf("mails: %+v", msgs)
	}
	_, text, _ := mailParts(t, msgs[0].Data)
	var magic string
	for _, f := range strings.Fields(text) {
		if strings.HasPrefix(f, g.url+"/inbox?token=") {
			magic = f
		}
	}
	if magic == "" {
		t.Fatalf("no sign-in link in the mail:\n%s", text)
	}
	if r := g.send(http.MethodGet, magic, "", nil); r.StatusCode != 200 || len(r.Cookies()) != 0 {
		t.Fatalf("GET of the mailed link: %d, want the confirmation page", r.StatusCode)
	}
	resp := g.send(http.MethodPost, magic, "latchkey_confirm=1", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/inbox" {
		t.Fatalf("confirming the mailed link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	g.get("/inbox", cookie(sessionCookie(t, resp)))
	if got := g.upstream.last(t).Get("X-User-ID"); got != fmt.Sprint(u.ID) {
		t.Errorf("upstream X-User-ID %q, want %d", got, u.ID)
	}
	// Per address: the sixth request in the window is throttled.
	for i := 0; i < 4; i++ {
		ask("nia@example.com")
	}
	if r := ask("nia@example.com"); r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("sixth request for one address: %d, want 429", r.StatusCode)
	}
	waitMails(t, be, 5)
	time.Sleep(50 * time.Millisecond) // time for a sixth mail, were one queued
	if n := len(be.Messages()); n != 5 {
		t.Errorf("%d mails sent, want 5 (the throttled request sends none)", n)
	}
}
