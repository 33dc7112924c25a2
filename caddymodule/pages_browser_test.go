package caddymodule_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// target is one thing a finger presses, as the browser lays it out.
type target struct {
	Name   string  `json:"name"`
	Height float64 `json:"height"`
	Width  float64 `json:"width"`
}

// smallTargets lists the visible buttons, inputs and button links of the
// page smaller than 44 by 44 CSS pixels, at a phone's width.
func smallTargets(t *testing.T, ctx context.Context) []target {
	t.Helper()
	ts, err := chromedp.Run(ctx, chromedp.Evaluate[[]target](`[...document.querySelectorAll('button, input:not([type=hidden]), a.button')]
		.filter(e => e.offsetParent !== null)
		.map(e => { const r = e.getBoundingClientRect(); return {name: e.id || e.name || e.tagName, height: r.height, width: r.width}; })`))
	if err != nil {
		t.Fatalf("measuring the page's targets: %v", err)
	}
	var small []target
	for _, tg := range ts {
		if tg.Height < 44 || tg.Width < 44 {
			small = append(small, tg)
		}
	}
	return small
}

// TestPagesForPeople walks the pages a person meets, in Chromium at a
// phone's width: each names the site, its buttons and fields are at least
// 44 px, a used link says so in plain words and whom to ask, and signing
// out ends on a confirmation with the way back in.
func TestPagesForPeople(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o := gwOpts{handler: "site_name \"Example members\"\n\t\tcontact \"the front desk\"\n\t\tinvite\n\t\tlink\n\t\tpassword"}
	g := startGateway(t, o)
	g.cli(o, "roles", "create", "staff")
	g.cli(o, "users", "add", "--email", "staff@example.com", "--site", "127.0.0.1", "--role", "staff")
	inv := g.createInvite(o, "staff@example.com")
	used := g.mintLink(o, "--user", "staff@example.com", "--url", g.url+"/news", "--max-uses", "1")
	resp, err := http.PostForm(used.URL, url.Values{"latchkey_confirm": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	shots := evidenceDir(t)
	bctx, stop := startBrowser(t, ctx)
	defer stop()
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(360, 740)); err != nil {
		t.Fatal(err)
	}
	page := func(name, path string, want ...string) {
		t.Helper()
		if path != "" {
			if _, err := chromedp.Run(bctx, chromedp.NavigateResponse(g.url+path)); err != nil {
				t.Fatalf("%s: opening %s: %v", name, path, err)
			}
		}
		text := bodyText(t, bctx)
		for _, w := range append([]string{"Example members"}, want...) {
			if !strings.Contains(text, w) {
				t.Errorf("%s: the page does not say %q:\n%s", name, w, text)
			}
		}
		for _, bad := range []string{"Gone", "Unauthorized", "Status 4"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s: the page says %q:\n%s", name, bad, text)
			}
		}
		if small := smallTargets(t, bctx); len(small) > 0 {
			t.Errorf("%s: targets smaller than 44×44 px: %+v", name, small)
		}
		if t.Failed() {
			screenshot(t, bctx, shots, name+".png")
			savePage(t, bctx, shots, name+".html")
		}
	}

	page("used-link", strings.TrimPrefix(used.URL, g.url), "This link has already been used", "Ask the front desk for a new link.")
	page("login", "/.latchkey/login", "Sign in")
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("code"), inv.Code)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("submit"))); err != nil {
		t.Fatalf("signing in: %v", err)
	}
	page("sessions", "/.latchkey/sessions", "Your sessions")
	page("invite", "/.latchkey/invite", "Invite someone")
	page("sign-out", "/.latchkey/logout", "Sign out of Example members")
	if _, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("sign-out"))); err != nil {
		t.Fatalf("signing out: %v", err)
	}
	if loc := location(t, bctx); loc.Path != "/.latchkey/logout" {
		t.Errorf("after signing out the browser is at %s, want the confirmation", loc)
	}
	page("signed-out", "", "You have been signed out of Example members")
	href, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.getElementById("sign-in") || {}).href || ""`))
	if err != nil || !strings.HasSuffix(href, "/.latchkey/login") {
		t.Errorf("the confirmation's way back in: %q (%v)", href, err)
	}
}

// TestStaffPageKeepsWhatWasTyped: an address the page refuses comes back
// with what was typed still in the fields, and a created code's login URL
// is a link.
func TestStaffPageKeepsWhatWasTyped(t *testing.T) {
	o := gwOpts{handler: "invite"}
	g := startGateway(t, o)
	g.cli(o, "roles", "create", "staff")
	u := g.user("staff@example.com")
	g.cli(o, "roles", "add", "staff@example.com", "staff@127.0.0.1")
	token, _ := g.session(u, time.Now())
	post := func(form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, g.url+"/.latchkey/invite", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", g.url)
		req.Header.Set("Cookie", "latchkey_session="+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readBody(t, resp)
	}
	status, body := post(url.Values{"email": {"ada at example"}, "name": {"Ada <Lovelace>"}, "phone": {"+44 20 7946 0000"}})
	for _, want := range []string{`value="ada at example"`, `value="Ada &lt;Lovelace&gt;"`, `value="&#43;44 20 7946 0000"`, "like name@example.com"} {
		if !strings.Contains(body, want) {
			t.Errorf("after a refused address (%d) the page lacks %s:\n%s", status, want, body)
		}
	}
	status, body = post(url.Values{"email": {"ada@example.com"}, "name": {"Ada"}})
	if want := `<a id="login-url" href="` + g.url + `/.latchkey/login">`; status != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("a created invite (%d): the page lacks %s:\n%s", status, want, body)
	}
}
