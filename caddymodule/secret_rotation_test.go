package caddymodule_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/invite"
	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// rotationHandler takes every credential that the secret keys.
const rotationHandler = "invite\n\t\tlink {\n\t\t\tconfirm off\n\t\t}\n\t\tticket louvre visit\n\t\ttickets {\n\t\t\talso session link invite\n\t\t}"

// madeCreds are one of each credential, made through the CLI under one
// secret: a session cookie, an unused invite code, an unlimited link and
// tickets (one-shot: one is spent on each check).
type madeCreds struct {
	session string
	code    string
	link    string
	tickets []createdTicket
}

func (g *gateway) makeCreds(o gwOpts, email string) *madeCreds {
	g.t.Helper()
	var s struct{ Cookie string }
	if err := json.Unmarshal([]byte(g.cli(o, "sessions", "create", "--user", "ada@example.com", "--json")), &s); err != nil {
		g.t.Fatal(err)
	}
	_, token, _ := strings.Cut(s.Cookie, "=")
	return &madeCreds{
		session: token,
		code:    g.createInvite(o, email).Code,
		link:    g.mintLink(o, "--user", "ada@example.com", "--url", g.url+"/linked", "--max-uses", "0").URL,
		tickets: g.createTickets(o, "--place", "louvre", "--purpose", "visit", "--count", "4", "--url", g.url+"/louvre"),
	}
}

// checkCreds uses each credential once and says whether each was accepted.
func (g *gateway) checkCreds(c *madeCreds, want bool, when string) {
	g.t.Helper()
	ok := func(kind string, got bool) {
		g.t.Helper()
		if got != want {
			g.t.Errorf("%s: %s accepted %v, want %v", when, kind, got, want)
		}
	}
	ok("session cookie", g.get("/s", cookie(c.session)).StatusCode == http.StatusOK)
	ok("invite code", g.login(c.code, "/").StatusCode == http.StatusSeeOther)
	ok("link", g.send(http.MethodGet, c.link, "", nil).StatusCode == http.StatusOK)
	tk := c.tickets[0]
	c.tickets = c.tickets[1:]
	ok("ticket", g.send(http.MethodGet, tk.URL, "", nil).StatusCode == http.StatusOK)
}

// underOnly says whether each of c's credentials verifies under secret
// alone: the session and code found by their keyed hashes, the link's
// signature, the ticket's password.
func (g *gateway) underOnly(c *madeCreds, secret []byte) map[string]bool {
	g.t.Helper()
	ctx := context.Background()
	out := map[string]bool{}
	_, reason, err := session.New(g.st, secret, session.Config{Site: "127.0.0.1"}, nil, nil).Check(ctx, c.session)
	out["session"] = err == nil && reason != session.ReasonUnknown
	norm, _ := invite.Normalize(c.code)
	_, err = g.st.InviteByCodeHash(ctx, invite.NewHasher(secret).Hash(norm))
	out["invite"] = err == nil
	ring, err := link.NewKeyRing(link.HS256Key(secret, "default"))
	if err != nil {
		g.t.Fatal(err)
	}
	u, _ := url.Parse(c.link)
	_, reason, _ = ring.Verify(u.Query().Get("token"), time.Now())
	out["link"] = reason != link.ReasonBadSignature
	tk := c.tickets[len(c.tickets)-1]
	row, err := g.st.Ticket(ctx, tk.UUID)
	if err != nil {
		g.t.Fatal(err)
	}
	h, err := ticket.NewHasher(secret, ticket.DefaultArgon2Params)
	if err != nil {
		g.t.Fatal(err)
	}
	out["ticket"] = h.Check(row, tk.Password)
	return out
}

func allAre(m map[string]bool, want bool) bool {
	for _, v := range m {
		if v != want {
			return false
		}
	}
	return len(m) == 4
}

// refusedAsUnknown checks that the audit trail has a refusal of each kind
// with the reason an unknown credential of that kind gets.
func (g *gateway) refusedAsUnknown() {
	g.t.Helper()
	for kind, reason := range map[string]string{
		"session": session.ReasonUnknown, "invite": invite.ReasonUnknown,
		"link": link.ReasonBadSignature, "ticket": "bad_password",
	} {
		g.waitAudit(store.AuditFilter{Kind: kind, Outcome: store.OutcomeRefused, Reason: reason}, 1)
	}
}

// TestSecretRotateAndRetire rotates a generated secret through the CLI on
// a running gateway: what was made before works after `secret rotate` and
// after a reload; what is made after is made under the new secret; after
// `secret retire` and a reload the old credentials are refused as unknown
// ones and the new ones still work.
func TestSecretRotateAndRetire(t *testing.T) {
	o := gwOpts{generatedSecret: true, handler: rotationHandler}
	g := startGateway(t, o)
	g.user("ada@example.com")
	oldSecret := g.secret
	old := g.makeCreds(o, "old@example.com")
	// A session the gateway itself starts under the old secret.
	resp := g.login(old.code, "/")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the old code before the rotation: %d", resp.StatusCode)
	}
	gatewaySession := sessionCookie(t, resp)

	out := g.cli(o, "secret", "rotate")
	if !strings.Contains(out, "Reload Caddy (caddy reload --force) for running gateways to use it") {
		t.Errorf("rotate output does not say to reload:\n%s", out)
	}
	secretPath := keys.SecretPath(g.db)
	newSecret, err := keys.ReadSecretFile(secretPath)
	if err != nil || string(newSecret) == string(oldSecret) {
		t.Fatalf("after rotate the secret file holds the old secret (%v)", err)
	}
	for _, s := range [][]byte{oldSecret, newSecret} {
		if strings.Contains(out, string(s)) {
			t.Fatal("rotate printed a secret")
		}
	}
	if !strings.Contains(out, keys.Fingerprint(newSecret)) || !strings.Contains(out, keys.Fingerprint(oldSecret)) {
		t.Errorf("rotate output lacks the fingerprints:\n%s", out)
	}
	if prev, err := keys.ReadPreviousSecrets(keys.PreviousSecretsPath(secretPath)); err != nil || len(prev) != 1 || string(prev[0]) != string(oldSecret) {
		t.Fatalf("previous secrets after rotate: %d, %v", len(prev), err)
	}

	// Before the reload the gateway still runs on the old secret alone.
	g.checkCreds(old, true, "after rotate, before the reload")
	g.load(o)
	g.checkCreds(old, true, "after rotate and a reload")
	if r := g.get("/g", cookie(gatewaySession)); r.StatusCode != http.StatusOK {
		t.Errorf("the gateway's own session from before the rotation: %d", r.StatusCode)
	}

	fresh := g.makeCreds(o, "new@example.com")
	if v := g.underOnly(fresh, oldSecret); !allAre(v, false) {
		t.Errorf("made after the rotation, verified under the old secret alone: %v; want none", v)
	}
	if v := g.underOnly(fresh, newSecret); !allAre(v, true) {
		t.Errorf("made after the rotation, verified under the new secret: %v; want all", v)
	}
	g.checkCreds(fresh, true, "new, after the rotation")

	var shown []struct{ Use, Fingerprint, Where string }
	if err := json.Unmarshal([]byte(g.cli(o, "secret", "show", "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown) != 2 || shown[0].Use != "current" || shown[0].Fingerprint != keys.Fingerprint(newSecret) ||
		shown[1].Use != "previous" || shown[1].Fingerprint != keys.Fingerprint(oldSecret) || shown[0].Where != secretPath {
		t.Errorf("secret show: %+v", shown)
	}

	out = g.cli(o, "secret", "retire")
	if !strings.Contains(out, "Retired 1") || !strings.Contains(out, "caddy reload") {
		t.Errorf("retire output:\n%s", out)
	}
	if _, err := os.Stat(keys.PreviousSecretsPath(secretPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous secrets file after retire: %v", err)
	}
	g.load(o)
	g.checkCreds(old, false, "old, after retire and a reload")
	if r := g.get("/g", cookie(gatewaySession)); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the gateway's own old session after retiring: %d, want 401", r.StatusCode)
	}
	g.refusedAsUnknown()
	g.checkCreds(fresh, true, "new, after retire and a reload")
	if out := g.cli(o, "secret", "retire"); !strings.Contains(out, "No previous secrets") {
		t.Errorf("retiring again:\n%s", out)
	}
}

// TestPreviousSecretsConfigured rotates a secret set in the config: the new
// one in `secret`, the old one in previous_secrets (a placeholder), then
// removed. The CLI's rotate and retire refuse, pointing at previous_secrets.
func TestPreviousSecretsConfigured(t *testing.T) {
	const newSecret = "the-configured-new-secret-0123456789abcdef"
	t.Setenv("LATCHKEY_TEST_OLD_SECRET", testSecret)
	o := gwOpts{handler: rotationHandler}
	g := startGateway(t, o)
	g.user("ada@example.com")
	old := g.makeCreds(o, "old@example.com")

	rotated := gwOpts{generatedSecret: true, handler: rotationHandler,
		global: "secret " + newSecret + "\n\t\tprevious_secrets {env.LATCHKEY_TEST_OLD_SECRET}"}
	for _, verb := range []string{"rotate", "retire"} {
		out, err := g.cliErr(rotated, "secret", verb)
		if err == nil || !strings.Contains(out, "previous_secrets") || !strings.Contains(out, "caddy reload") {
			t.Errorf("secret %s with a configured secret: %v\n%s", verb, err, out)
		}
	}
	g.load(rotated)
	g.checkCreds(old, true, "after the rotation in the config")
	fresh := g.makeCreds(rotated, "new@example.com")
	if v := g.underOnly(fresh, []byte(testSecret)); !allAre(v, false) {
		t.Errorf("made after the rotation, verified under the old secret alone: %v; want none", v)
	}
	if v := g.underOnly(fresh, []byte(newSecret)); !allAre(v, true) {
		t.Errorf("made after the rotation, verified under the new secret: %v; want all", v)
	}
	g.checkCreds(fresh, true, "new, after the rotation in the config")
	out := g.cli(rotated, "secret", "show")
	if !strings.Contains(out, keys.Fingerprint([]byte(newSecret))) || !strings.Contains(out, keys.Fingerprint([]byte(testSecret))) ||
		strings.Contains(out, newSecret) || strings.Contains(out, testSecret) {
		t.Errorf("secret show with previous_secrets:\n%s", out)
	}

	retired := gwOpts{generatedSecret: true, handler: rotationHandler, global: "secret " + newSecret}
	g.load(retired)
	g.checkCreds(old, false, "old, once out of previous_secrets")
	g.refusedAsUnknown()
	g.checkCreds(fresh, true, "new, once the old secret is out of previous_secrets")
}
