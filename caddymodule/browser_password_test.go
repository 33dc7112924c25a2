package caddymodule_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestBrowserPasswordLoginAndSessions: in real Chromium browsers, a user
// imported with a Django hash signs in with the login page's password
// form on two browsers; the sessions page of the first lists both, this one
// marked, with the browser and system; "Sign out all other sessions" ends
// the second browser's session, which is sent back to the login page, and
// the first keeps working.
func TestBrowserPasswordLoginAndSessions(t *testing.T) {
	chromiumPath(t) // fail early, before starting a gateway
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startGateway(t, gwOpts{handler: "password\n\t\tinvite"})
	u := &store.User{Site: "127.0.0.1", Email: "ada@example.com", Active: true, PasswordHash: djangoPBKDF2(t, "analytical engine", "brassgears", 1000)}
	if err := g.st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	shots := t.TempDir()

	signIn := func(bctx context.Context, name string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.NavigateResponse(g.url+"/reports/q3")); err != nil {
			t.Fatalf("%s: opening a page: %v", name, err)
		}
		if loc := location(t, bctx); loc.Path != "/.latchkey/login" {
			t.Fatalf("%s: at %s, want the login page", name, loc)
		}
		if err := chromedp.Do(bctx,
			chromedp.WaitVisible(chromedp.ID("password-form")),
			chromedp.SendKeys(chromedp.ID("login-email"), "ada@example.com"),
			chromedp.SendKeys(chromedp.ID("login-password"), "analytical engine"),
		); err != nil {
			t.Fatalf("%s: filling the password form: %v", name, err)
		}
		resp, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.ID("password-submit")))
		if err != nil {
			t.Fatalf("%s: submitting: %v", name, err)
		}
		if resp.Status != http.StatusOK || location(t, bctx).Path != "/reports/q3" {
			t.Fatalf("%s: after signing in: status %d at %s, want the upstream's page\n%s", name, resp.Status, location(t, bctx), bodyText(t, bctx))
		}
	}

	actx, stopA := startBrowser(t, ctx)
	defer stopA()
	signIn(actx, "first browser")
	bctx, stopB := startBrowser(t, ctx)
	defer stopB()
	signIn(bctx, "second browser")
	if got, err := g.st.User(ctx, u.ID); err != nil || !strings.HasPrefix(got.PasswordHash, "$argon2id$") {
		t.Errorf("the Django hash was not upgraded: %v", err)
	}

	if _, err := chromedp.Run(actx, chromedp.NavigateResponse(g.url+"/.latchkey/sessions")); err != nil {
		t.Fatal(err)
	}
	countRows := func() (int, error) {
		if err := chromedp.Do(actx, chromedp.WaitVisible(chromedp.ID("sessions"))); err != nil {
			return 0, err
		}
		return chromedp.Run(actx, chromedp.Evaluate[int](`document.querySelectorAll("tr.session").length`))
	}
	rows, err := countRows()
	if err != nil {
		t.Fatalf("the sessions page: %v", err)
	}
	text := bodyText(t, actx)
	screenshot(t, actx, shots, "sessions.png")
	if rows != 2 || strings.Count(text, "(this browser)") != 1 || !strings.Contains(text, "Linux") || !strings.Contains(text, "Chrome") {
		t.Fatalf("the sessions page lists %d sessions: %q", rows, text)
	}
	if _, err := chromedp.RunResponse(actx, chromedp.Click(chromedp.ID("sign-out-others"))); err != nil {
		t.Fatalf("signing out the others: %v", err)
	}
	if rows, err = countRows(); err != nil || rows != 1 {
		t.Errorf("after signing out the others the page lists %d sessions (%v)", rows, err)
	}

	// The second browser is sent to the login page within a second.
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := chromedp.Run(bctx, chromedp.NavigateResponse(g.url+"/reports/q4")); err != nil {
			t.Fatal(err)
		}
		if location(t, bctx).Path == "/.latchkey/login" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second browser still reaches %s", location(t, bctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, err := chromedp.Run(actx, chromedp.NavigateResponse(g.url+"/reports/q5")); err != nil || resp.Status != http.StatusOK || location(t, actx).Path != "/reports/q5" {
		t.Errorf("the first browser after signing out the others: %v at %s", err, location(t, actx))
	}
}
