package gate

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/site"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// TestRefusalPagesSpeakPlainly: a refusal page names the site, says what
// happened in everyday words (never an HTTP status name or number), and
// offers the way in the route has — its sign-in page — or says whom to ask.
func TestRefusalPagesSpeakPlainly(t *testing.T) {
	pages, err := web.New("")
	if err != nil {
		t.Fatal(err)
	}
	st, err := site.New("app.example.com", []string{"app.example.com"}, "https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	withLogin := New(Config{LoginURL: "/.latchkey/login"}, Deps{Pages: pages, Site: st})
	named := New(Config{SiteName: "Example <members>", Contact: "the front desk (help@example.com)"}, Deps{Pages: pages, Site: st})
	bare := New(Config{}, Deps{Pages: pages, Site: st})

	for _, c := range []struct {
		g            *Gate
		kind, reason string
		status       int
		want         []string
	}{
		{bare, KindLink, "used_up", 410, []string{"This link has already been used", "Ask whoever sent it to you for a new link.", "app.example.com"}},
		{bare, KindLink, "expired", 410, []string{"This link has expired"}},
		{bare, KindLink, "malformed", 400, []string{"This link is not valid", "copy all of it"}},
		{bare, KindLink, "bad_signature", 403, []string{"This link is not valid"}},
		{bare, KindLink, "revoked", 410, []string{"This link has been withdrawn"}},
		{bare, KindTicket, "used", 410, []string{"This ticket has already been used", "for a new ticket"}},
		{bare, KindTicket, "wrong_place", 403, []string{"This ticket is not for this place"}},
		{bare, KindTicket, "in_use", 409, []string{"being used right now"}},
		{bare, KindInvite, "window_expired", 410, []string{"This invite code has expired", "for a new invite code"}},
		{bare, KindSession, "missing_role", 403, []string{"You do not have access to this page", "ask the person who runs this site"}},
		{bare, "", "throttled", 429, []string{"Too many attempts"}},
		{withLogin, "", "throttled", 429, []string{"Too many attempts"}},
		{bare, "", "store_error", 503, []string{"Signing in is unavailable right now"}},
		{withLogin, KindSession, "missing", 401, []string{"Please sign in", `href="/.latchkey/login"`}},
		{withLogin, KindSession, "expired", 401, []string{"Your session has ended", `href="/.latchkey/login"`}},
		{withLogin, KindSession, "missing_role", 403, []string{`href="/.latchkey/login"`}},
		// A used link is not brought back by signing in: the sign-in page
		// (which mails a new sign-in link) and whom to ask.
		{withLogin, KindLink, "used_up", 410, []string{"Ask whoever sent it to you", `href="/.latchkey/login"`}},
		{named, KindLink, "used_up", 410, []string{"Example &lt;members&gt;", "Ask the front desk (help@example.com) for a new link."}},
		{named, KindSession, "missing_role", 403, []string{"If you should have access, ask the front desk (help@example.com)."}},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		if err := c.g.writeRefusal(w, r, c.kind, c.status, c.reason); err != nil {
			t.Fatal(err)
		}
		body := w.Body.String()
		name := c.kind + "/" + c.reason
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d", name, w.Code, c.status)
		}
		for _, s := range c.want {
			if !strings.Contains(body, s) {
				t.Errorf("%s: page lacks %q:\n%s", name, s, body)
			}
		}
		for _, s := range []string{http.StatusText(c.status), "Status ", "credential"} {
			if strings.Contains(body, s) {
				t.Errorf("%s: page says %q:\n%s", name, s, body)
			}
		}
		if !strings.Contains(body, "Reference for support: "+c.reason) {
			t.Errorf("%s: page lacks the reason as a reference", name)
		}
	}
}

// TestRefusalMendedByWaitingOffersNoWayIn: throttled, unavailable and in
// use are mended by trying again, not by signing in or asking anyone.
func TestRefusalMendedByWaitingOffersNoWayIn(t *testing.T) {
	pages, err := web.New("")
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{LoginURL: "/.latchkey/login"}, Deps{Pages: pages})
	for _, c := range []struct {
		kind, reason string
		status       int
	}{{"", "throttled", 429}, {"", "store_error", 503}, {KindTicket, "in_use", 409}} {
		w := httptest.NewRecorder()
		if err := g.writeRefusal(w, httptest.NewRequest(http.MethodGet, "/x", nil), c.kind, c.status, c.reason); err != nil {
			t.Fatal(err)
		}
		if b := w.Body.String(); strings.Contains(b, "/.latchkey/login") || strings.Contains(b, `id="ask"`) {
			t.Errorf("%s: the page offers a sign-in or whom to ask:\n%s", c.reason, b)
		}
	}
}

// TestEveryReasonHasWords: no reason a credential gives falls through to
// the generic words.
func TestEveryReasonHasWords(t *testing.T) {
	// At a status with no words of its own, only a reason's words are
	// not the last resort's.
	generic := wording("", "", 500).Title
	for kind, reasons := range map[string][]string{
		KindLink:    {"used_up", "expired", "not_yet_valid", "revoked", "bad_signature", "malformed", "unknown", "wrong_target", "wrong_site", "unknown_user", "inactive_user"},
		KindTicket:  {"used", "expired", "revoked", "wrong_place", "bad_password", "in_use", "unknown"},
		KindInvite:  {"expired", "window_expired", "revoked", "unknown", "wrong_site"},
		KindSession: {"expired", "idle", "revoked", "possible_theft", "session_moved", "new_client", "missing_role", "inactive_user"},
		"":          {"throttled", "cross_origin", "store_error", "bad_request", "not_staff"},
	} {
		for _, reason := range reasons {
			if w := wording(kind, reason, 500); w.Title == generic {
				t.Errorf("%s/%s gets the generic %q", kind, reason, w.Title)
			}
		}
	}
}
