package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/caddymodule"
	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/mail/mailtest"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// cli runs the latchkey CLI against the gateway's own Caddyfile.
func (g *gateway) cli(o gwOpts, args ...string) string {
	g.t.Helper()
	out, err := g.cliErr(o, args...)
	if err != nil {
		g.t.Fatalf("caddy latchkey %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cliErr runs `caddy latchkey …` on the gateway's config.
func (g *gateway) cliErr(o gwOpts, args ...string) (string, error) {
	g.t.Helper()
	path := filepath.Join(g.dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(g.caddyfile(o)), 0o600); err != nil {
		g.t.Fatal(err)
	}
	return caddymodule.RunCLI(append(args, "--config", path, "--adapter", "caddyfile")...)
}

type createdInvite struct {
	ID       int64  `json:"id"`
	Code     string `json:"code"`
	LoginURL string `json:"login_url"`
	Site     string `json:"site"`
}

func (g *gateway) createInvite(o gwOpts, email string) createdInvite {
	g.t.Helper()
	out := g.cli(o, "invites", "create", "--email", email, "--name", "Luke Skywalker", "--phone", "+1 555 0100", "--no-send", "--json")
	var inv createdInvite
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		g.t.Fatalf("invites create output %q: %v", out, err)
	}
	return inv
}

// login posts a code to the login page and returns the response.
func (g *gateway) login(code, next string) *http.Response {
	g.t.Helper()
	form := url.Values{"code": {code}, "next": {next}}
	req, _ := http.NewRequest(http.MethodPost, g.url+"/.latchkey/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", firefoxUA)
	return g.do(req)
}

const firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

func sessionCookie(t *testing.T, resp *http.Response) string {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "latchkey_session" && c.Value != "" {
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie not HttpOnly/SameSite=Lax: %+v", c)
			}
			return c.Value
		}
	}
	t.Fatalf("no session cookie in %d response (headers %v)", resp.StatusCode, resp.Header)
	return ""
}

func TestInviteFlow(t *testing.T) {
	o := gwOpts{handler: "invite {\n\t\t\texpiry 6s\n\t\t}"}
	g := startGateway(t, o)
	inv := g.createInvite(o, "luke@example.com")
	if len(inv.Code) != 9 || inv.Site != "127.0.0.1" || inv.LoginURL != g.url+"/.latchkey/login" {
		t.Fatalf("created invite %+v", inv)
	}

	// A browser without a session is sent to the login page.
	if resp := g.get("/reports", map[string]string{"Accept": "text/html"}); resp.StatusCode != http.StatusFound ||
		resp.Header.Get("Location") != "/.latchkey/login?next=%2Freports" {
		t.Fatalf("no session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := g.get("/.latchkey/login?next=/reports", nil); resp.StatusCode != 200 {
		t.Fatalf("login page: %d", resp.StatusCode)
	}

	// First use registers the user; the code is typed carelessly.
	resp := g.login("  "+strings.ToLower(inv.Code)+" ", "/reports")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/reports" {
		t.Fatalf("first use: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	token := sessionCookie(t, resp)
	user, err := g.st.UserByEmail(context.Background(), "127.0.0.1", "luke@example.com")
	if err != nil {
		t.Fatalf("the invite did not register the user: %v", err)
	}
	if user.Name != "Luke Skywalker" || user.Phone != "+1 555 0100" || !user.Active || user.LoginCount != 1 {
		t.Errorf("registered user %+v", user)
	}
	if r := g.get("/reports", cookie(token)); r.StatusCode != 200 {
		t.Fatalf("with the new session: %d", r.StatusCode)
	}
	seen := g.upstream.last(t)
	if seen.Get("X-User-ID") != fmt.Sprint(user.ID) || seen.Get("X-Session-ID") == "" {
		t.Fatalf("upstream saw X-User-ID=%q X-Session-ID=%q, want user %d", seen.Get("X-User-ID"), seen.Get("X-Session-ID"), user.ID)
	}
	firstSession := seen.Get("X-Session-ID")

	// Second use logs the same user in with a new session.
	resp = g.login(inv.Code, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("second use: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	token2 := sessionCookie(t, resp)
	g.get("/again", cookie(token2))
	seen = g.upstream.last(t)
	if seen.Get("X-User-ID") != fmt.Sprint(user.ID) || seen.Get("X-Session-ID") == firstSession {
		t.Errorf("second use: upstream saw user %q session %q", seen.Get("X-User-ID"), seen.Get("X-Session-ID"))
	}
	stored, err := g.st.Invite(context.Background(), inv.ID)
	if err != nil || stored.UserID != user.ID || stored.UseCount != 2 || stored.FirstUsedAt.IsZero() {
		t.Errorf("invite after two uses: %+v %v", stored, err)
	}

	// Registration is in the audit trail, written with the use.
	evs, err := g.st.Audit(context.Background(), store.AuditFilter{Kind: invite.Kind, Outcome: store.OutcomeAccepted})
	if err != nil || len(evs) != 2 {
		t.Fatalf("accepted invite audit records: %d %v", len(evs), err)
	}
	if evs[1].Reason != "registered" || evs[0].Reason != "login" || evs[1].UserID != user.ID || evs[1].CredentialID != fmt.Sprint(inv.ID) {
		t.Errorf("audit records %+v", evs)
	}
	if e := evs[1]; e.UABrowser != "Firefox" || e.UAOS != "Linux" || e.ClientIP != "127.0.0.1" || e.SessionID == "" || e.Status != http.StatusSeeOther {
		t.Errorf("registration record lacks request details: %+v", e)
	}

	// Once the code has expired, its sessions end and it logs no one in.
	time.Sleep(time.Until(stored.FirstUsedAt.Add(6*time.Second + 100*time.Millisecond)))
	if r := g.get("/late", cookie(token)); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("session after the code expired: %d, want 401", r.StatusCode)
	}
	if r := g.login(inv.Code, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired code: %d, want 401", r.StatusCode)
	}
	refused := g.waitAudit(store.AuditFilter{Kind: invite.Kind, Outcome: store.OutcomeRefused}, 1)
	if refused[0].Reason != invite.ReasonExpired {
		t.Errorf("expired code audited as %q", refused[0].Reason)
	}
}

func TestInviteRefusalsAndThrottle(t *testing.T) {
	o := gwOpts{handler: "invite {\n\t\t\tthrottle 3 1m\n\t\t}"}
	g := startGateway(t, o)
	inv := g.createInvite(o, "leia@example.com")
	revoked := g.createInvite(o, "han@example.com")
	g.cli(o, "invites", "revoke", fmt.Sprint(revoked.ID))

	// Unknown and revoked codes get the same answer.
	var bodies []string
	for _, code := range []string{"ZZZZZZ999", revoked.Code} {
		resp := g.login(code, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("code %s: %d, want 401", code, resp.StatusCode)
		}
		bodies = append(bodies, resp.Header.Get("Content-Length"))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("unknown and revoked codes answer differently: %v", bodies)
	}
	g.login("garbage", "")
	// The fourth failure in a minute is throttled, even with the right code.
	resp := g.login(inv.Code, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 failures: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	evs := g.waitAudit(store.AuditFilter{Kind: invite.Kind, Outcome: store.OutcomeRefused}, 4)
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Reason] += int(max(e.Count, 1))
	}
	if reasons[invite.ReasonUnknown] != 2 || reasons[invite.ReasonRevoked] != 1 || reasons[invite.ReasonThrottled] != 1 {
		t.Errorf("audited reasons %v", reasons)
	}
	if g.upstream.count() != 0 {
		t.Error("a refused code reached the upstream")
	}
}

func TestInviteWrongSite(t *testing.T) {
	o := gwOpts{handler: "invite"}
	g := startGateway(t, o)
	// The CLI makes codes only for sites in the config; another gateway
	// on the same store could make one for its own site.
	if _, err := g.cliErr(o, "invites", "create", "--email", "x@example.com", "--domain", "other.example.com", "--no-send", "--json"); err == nil {
		t.Error("the CLI made a code for a site the config does not serve")
	}
	code, err := invite.NewService(g.st, g.secret, invite.DefaultRules(), nil).Create(t.Context(), &store.Invite{Site: "other.example.com", Email: "x@example.com"}, 9)
	if err != nil {
		t.Fatal(err)
	}
	if r := g.login(code, ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("code of another site: %d, want 401", r.StatusCode)
	}
	evs := g.waitAudit(store.AuditFilter{Kind: invite.Kind}, 1)
	if evs[0].Reason != invite.ReasonWrongSite {
		t.Errorf("audited as %q, want wrong_site", evs[0].Reason)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStaffInvitePage(t *testing.T) {
	be := &mailtest.Backend{}
	o := smtpOpts(mailtest.Serve(t, be, nil))
	g := startGateway(t, o)
	staff := &store.User{Email: "boss@example.com", Active: true, Roles: []store.Role{{Site: "127.0.0.1", Name: "staff"}}}
	if err := g.st.CreateUser(context.Background(), staff); err != nil {
		t.Fatal(err)
	}
	plain := g.user("worker@example.com")
	staffTok, _ := g.session(staff, time.Now())
	plainTok, _ := g.session(plain, time.Now())

	post := func(token string, form url.Values) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, g.url+"/.latchkey/invite", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", "latchkey_session="+token)
		return g.do(req)
	}
	if r := g.get("/.latchkey/invite", map[string]string{"Accept": "text/html"}); r.StatusCode != http.StatusFound {
		t.Errorf("invite page without session: %d, want a redirect to the login page", r.StatusCode)
	}
	if r := g.get("/.latchkey/invite", cookie(plainTok)); r.StatusCode != http.StatusForbidden {
		t.Errorf("invite page for a non-staff user: %d, want 403", r.StatusCode)
	}
	if r := post(plainTok, url.Values{"email": {"x@example.com"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("non-staff POST: %d, want 403", r.StatusCode)
	}
	if r := g.get("/.latchkey/invite", cookie(staffTok)); r.StatusCode != 200 {
		t.Fatalf("invite page for staff: %d", r.StatusCode)
	}
	if r := post(staffTok, url.Values{"email": {"New.Person@Example.com"}, "name": {"New Person"}, "phone": {"+1 555 0199"}}); r.StatusCode != 200 {
		t.Fatalf("staff POST: %d", r.StatusCode)
	}
	// The mail goes out from the outbox after the answer; the invite is
	// marked sent once the relay has it.
	if msgs := waitMails(t, be, 1); len(msgs) != 1 || msgs[0].To[0] != "new.person@example.com" {
		t.Fatalf("mails sent: %+v", msgs)
	}
	var invs []store.Invite
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var err error
		invs, err = g.st.Invites(context.Background(), store.InviteFilter{Site: "127.0.0.1"})
		if err != nil || len(invs) != 1 || invs[0].Email != "new.person@example.com" || invs[0].CreatedBy != fmt.Sprintf("user:%d", staff.ID) {
			t.Fatalf("invites after the staff page: %+v %v", invs, err)
		}
		if !invs[0].SentAt.IsZero() || time.Now().After(deadline) {
			break
		}
	}
	if invs[0].SentAt.IsZero() {
		t.Fatalf("invite not marked sent: %+v", invs[0])
	}
	// A cross-site form cannot make staff send invites.
	req, _ := http.NewRequest(http.MethodPost, g.url+"/.latchkey/invite", strings.NewReader("email=evil%40example.com"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "latchkey_session="+staffTok)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if r := g.do(req); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", r.StatusCode)
	}
}
