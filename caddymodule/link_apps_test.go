package caddymodule_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Links as an app in another language mints them (docs/links.md): a JWT
// it signs itself, with the key `caddy latchkey links keys` prints.

type linkKeyRecord struct {
	KID          string `json:"kid"`
	Alg          string `json:"alg"`
	Use          string `json:"use"`
	Secret       string `json:"secret"`
	PublicKey    string `json:"public_key"`
	PublicKeyPEM string `json:"public_key_pem"`
}

func (g *gateway) linkKeys(o gwOpts) []linkKeyRecord {
	g.t.Helper()
	out := g.cli(o, "links", "keys", "--json")
	var recs []linkKeyRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		g.t.Fatalf("links keys --json: %q: %v", out, err)
	}
	return recs
}

// hs256Key is the key of kid from `links keys --json`, decoded.
func (g *gateway) hs256Key(o gwOpts, kid string) []byte {
	g.t.Helper()
	for _, r := range g.linkKeys(o) {
		if r.KID == kid && r.Alg == "HS256" {
			k, err := base64.RawURLEncoding.DecodeString(r.Secret)
			if err != nil {
				g.t.Fatal(err)
			}
			return k
		}
	}
	g.t.Fatalf("no HS256 key %q in links keys", kid)
	return nil
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// appToken signs claims as an app would, by hand: no JWT library.
func appToken(t *testing.T, header map[string]any, claims map[string]any, sign func(string) []byte) string {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := b64url(hb) + "." + b64url(cb)
	return input + "." + b64url(sign(input))
}

func hmacSigner(key []byte) func(string) []byte {
	return func(in string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return m.Sum(nil)
	}
}

// appLink is a link to path with an HS256 token of the gateway's default
// key and these claims on top of sub, tgt and exp.
func (g *gateway) appLink(key []byte, path, sub string, extra map[string]any) string {
	g.t.Helper()
	claims := map[string]any{"sub": sub, "tgt": strings.TrimPrefix(g.url, "http://") + path, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	tok := appToken(g.t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "default"}, claims, hmacSigner(key))
	return g.url + path + "?token=" + url.QueryEscape(tok)
}

func TestLinksKeysCommand(t *testing.T) {
	dir := t.TempDir()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	appPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, ed25519.SeedSize))
	privFile, pubFile := filepath.Join(dir, "k2.pem"), filepath.Join(dir, "app1.pub")
	writePEM(t, privFile, "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(priv)))
	writePEM(t, pubFile, "PUBLIC KEY", must(x509.MarshalPKIXPublicKey(appPriv.Public())))
	o := gwOpts{handler: "link", global: fmt.Sprintf("link_keys {\n ed25519 k2 %s\n hs256 default\n ed25519_public app1 %s\n}", privFile, pubFile)}
	g := startGateway(t, o)

	recs := g.linkKeys(o)
	if len(recs) != 3 {
		t.Fatalf("links keys: %+v", recs)
	}
	pub := priv.Public().(ed25519.PublicKey)
	appPub := appPriv.Public().(ed25519.PublicKey)
	want := []linkKeyRecord{
		{KID: "k2", Alg: "EdDSA", Use: "signs", PublicKey: b64url(pub), PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(pub))}))},
		{KID: "default", Alg: "HS256", Use: "verifies"},
		{KID: "app1", Alg: "EdDSA", Use: "verifies", PublicKey: b64url(appPub), PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(appPub))}))},
	}
	for i, w := range want {
		got := recs[i]
		secret := got.Secret
		got.Secret = ""
		if got != w {
			t.Errorf("key %d: %+v\nwant %+v", i, got, w)
		}
		if (w.Alg == "HS256") != (secret != "") {
			t.Errorf("key %d: secret %q", i, secret)
		}
	}
	// Every record has every key, even where it is empty.
	var raw []map[string]any
	json.Unmarshal([]byte(g.cli(o, "links", "keys", "--json")), &raw)
	for _, r := range raw {
		for _, k := range []string{"kid", "alg", "use", "secret", "public_key", "public_key_pem"} {
			if _, ok := r[k].(string); !ok {
				t.Errorf("record %v lacks %q", r, k)
			}
		}
	}
	// The printed HS256 key is the one the gateway verifies with.
	u := g.user("kim@example.com")
	key := g.hs256Key(o, "default")
	if r := g.send(http.MethodGet, g.appLink(key, "/news", "kim@example.com", map[string]any{"max": 0}), "", nil); r.StatusCode != 200 || g.upstream.last(t).Get("X-User-ID") != fmt.Sprint(u.ID) {
		t.Fatalf("link signed with the printed key: %d", r.StatusCode)
	}
	// A verify-only key: a token the app signs with its private half is
	// accepted; the gateway's own links are signed with the first key.
	appTok := appToken(t, map[string]any{"alg": "EdDSA", "kid": "app1"}, map[string]any{
		"sub": fmt.Sprint(u.ID), "tgt": strings.TrimPrefix(g.url, "http://") + "/news", "exp": time.Now().Add(time.Hour).Unix(), "max": 0,
	}, func(in string) []byte { return ed25519.Sign(appPriv, []byte(in)) })
	if r := g.send(http.MethodGet, g.url+"/news?token="+appTok, "", nil); r.StatusCode != 200 {
		t.Errorf("token of the verify-only key: %d", r.StatusCode)
	}
	l := g.mintLink(o, "--user", "kim@example.com", "--url", g.url+"/news")
	tok, _ := url.Parse(l.URL)
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.Query().Get("token"), ".")[0])
	if !strings.Contains(string(hb), `"kid":"k2"`) {
		t.Errorf("gateway's link header %s, want kid k2", hb)
	}

	table := g.cli(o, "links", "keys")
	for _, s := range []string{"KID", "k2", "EdDSA", "signs", "public " + b64url(pub), "default", "HS256", "verifies", "secret " + b64url(key), "app1", "public " + b64url(appPub)} {
		if !strings.Contains(table, s) {
			t.Errorf("links keys table lacks %q:\n%s", s, table)
		}
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestAppLinkMalformedClaims: a token the gateway's key signed whose claims
// are wrong is refused as malformed (400), audited as such; another key's
// is still bad_signature.
func TestAppLinkMalformedClaims(t *testing.T) {
	o := gwOpts{handler: "link {\n confirm off\n}"}
	g := startGateway(t, o)
	g.user("mo@example.com")
	key := g.hs256Key(o, "default")
	cases := []struct {
		name  string
		extra map[string]any
	}{
		{"exp in a string", map[string]any{"exp": "tomorrow"}},
		{"negative max", map[string]any{"max": -1}},
		{"unknown mode", map[string]any{"mode": "admin"}},
		{"sub a name", map[string]any{"sub": "mo"}},
	}
	for _, c := range cases {
		r := g.send(http.MethodGet, g.appLink(key, "/news", "mo@example.com", c.extra), "", map[string]string{"Accept": "application/json"})
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", c.name, r.StatusCode)
		}
	}
	wrongKey := bytes.Repeat([]byte{1}, 32)
	if r := g.send(http.MethodGet, g.appLink(wrongKey, "/news", "mo@example.com", map[string]any{"max": -1}), "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad claims under another key: %d, want 401", r.StatusCode)
	}
	if g.upstream.count() != 0 {
		t.Fatal("a malformed link reached the upstream")
	}
	evs := g.waitAudit(store.AuditFilter{Kind: "link", Outcome: store.OutcomeRefused}, len(cases)+1)
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Reason] += int(max(e.Count, 1))
	}
	if reasons["malformed"] != len(cases) || reasons["bad_signature"] != 1 {
		t.Errorf("refusals audited: %v; want %d malformed, 1 bad_signature", reasons, len(cases))
	}
	// The JSON answer names the reason.
	req, _ := http.NewRequest(http.MethodGet, g.appLink(key, "/news", "mo@example.com", map[string]any{"max": 1.5}), nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Reason string }
	if json.NewDecoder(resp.Body).Decode(&body); body.Reason != "malformed" {
		t.Errorf("refusal JSON reason %q, want malformed", body.Reason)
	}
}

// TestAppLinkSubjectByEmail: sub may be the user's address, found on the
// link's site; an address of another site's user is nobody here.
func TestAppLinkSubjectByEmail(t *testing.T) {
	o := gwOpts{handler: "link {\n confirm off\n}"}
	g := startGateway(t, o)
	site := "127.0.0.1"
	mk := func(site, email string) *store.User {
		u := &store.User{Site: site, Email: email, Active: true}
		if err := g.st.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	here := mk(site, "ana@example.com")
	mk("other.example", "ana@example.com") // same address, another site
	everywhere := mk("", "eve@example.com")
	mk("other.example", "ola@example.com")
	key := g.hs256Key(o, "default")
	unlimited := map[string]any{"max": 0}

	for _, c := range []struct {
		sub  string
		want int64
	}{
		{"ana@example.com", here.ID},
		{"Ana@Example.COM", here.ID},
		{"eve@example.com", everywhere.ID},
		{fmt.Sprint(here.ID), here.ID},
	} {
		r := g.send(http.MethodGet, g.appLink(key, "/news", c.sub, unlimited), "", nil)
		if r.StatusCode != 200 || g.upstream.last(t).Get("X-User-ID") != fmt.Sprint(c.want) {
			t.Errorf("sub %q: %d, upstream X-User-ID %q; want user %d", c.sub, r.StatusCode, g.upstream.last(t).Get("X-User-ID"), c.want)
		}
	}
	seen := g.upstream.count()
	for _, sub := range []string{"ola@example.com", "nobody@example.com"} {
		if r := g.send(http.MethodGet, g.appLink(key, "/news", sub, unlimited), "", nil); r.StatusCode != http.StatusForbidden {
			t.Errorf("sub %q: %d, want 403", sub, r.StatusCode)
		}
	}
	if g.upstream.count() != seen {
		t.Fatal("a link for nobody on this site reached the upstream")
	}
	evs := g.waitAudit(store.AuditFilter{Kind: "link", Outcome: store.OutcomeRefused}, 2)
	for _, e := range evs {
		if e.Reason != "unknown_user" {
			t.Errorf("refusal audited as %q, want unknown_user", e.Reason)
		}
	}
	// The accepted uses are audited under the user the address named.
	acc := g.waitAudit(store.AuditFilter{Kind: "link", Outcome: store.OutcomeAccepted, UserID: here.ID}, 3)
	if len(acc) == 0 {
		t.Error("no accepted use audited for the user")
	}
}

// TestAppLinkWithoutJTI: a token without jti is counted, audited, shown
// and revoked under the digest of its token, like a jti; without iat it
// counts as issued before a revocation of its user's links.
func TestAppLinkWithoutJTI(t *testing.T) {
	o := gwOpts{handler: "link {\n confirm off\n}"}
	g := startGateway(t, o)
	u := g.user("jo@example.com")
	key := g.hs256Key(o, "default")

	twice := g.appLink(key, "/news", "jo@example.com", map[string]any{"max": 2})
	for i := range 2 {
		if r := g.send(http.MethodGet, twice, "", nil); r.StatusCode != 200 {
			t.Fatalf("use %d of a max 2 link: %d", i+1, r.StatusCode)
		}
	}
	if r := g.send(http.MethodGet, twice, "", nil); r.StatusCode != http.StatusGone {
		t.Fatalf("third use of a max 2 link: %d, want 410", r.StatusCode)
	}
	pu, _ := url.Parse(twice)
	sum := sha256.Sum256([]byte(pu.Query().Get("token")))
	digest := "sha256:" + b64url(sum[:])
	row, err := g.st.Link(t.Context(), digest)
	if err != nil || row.Uses != 2 || row.MaxUses != 2 || row.UserID != u.ID {
		t.Fatalf("row of the digest: %+v, %v", row, err)
	}
	g.waitAudit(store.AuditFilter{Kind: "link", Outcome: store.OutcomeRefused, CredentialID: digest}, 1)
	var shown struct {
		JTI     string `json:"jti"`
		Uses    int    `json:"uses"`
		UsesLog []struct {
			Outcome, Reason string
		} `json:"uses_log"`
	}
	if err := json.Unmarshal([]byte(g.cli(o, "links", "show", digest, "--json")), &shown); err != nil || shown.Uses != 2 || len(shown.UsesLog) != 3 {
		t.Errorf("links show %s: %+v, %v", digest, shown, err)
	}

	// Without max, a token works once (as links create's default).
	once := g.appLink(key, "/news", "jo@example.com", nil)
	if r1, r2 := g.send(http.MethodGet, once, "", nil), g.send(http.MethodGet, once, "", nil); r1.StatusCode != 200 || r2.StatusCode != http.StatusGone {
		t.Errorf("link without max: %d then %d, want 200 then 410", r1.StatusCode, r2.StatusCode)
	}

	// An unlimited one, revoked by its digest after its first use; the
	// gateway hears of it through the store within a second.
	unl := g.appLink(key, "/news", "jo@example.com", map[string]any{"max": 0})
	if r := g.send(http.MethodGet, unl, "", nil); r.StatusCode != 200 {
		t.Fatalf("unlimited link: %d", r.StatusCode)
	}
	pu, _ = url.Parse(unl)
	sum = sha256.Sum256([]byte(pu.Query().Get("token")))
	g.cli(o, "links", "revoke", "sha256:"+b64url(sum[:]))
	waitLinkStatus(t, g, unl, http.StatusGone)

	// No iat: refused once the user's links are revoked, however new.
	// (An unknown claim makes each token differ from the ones above, which
	// have the same claims and, in the same second, the same exp.)
	withIat := g.appLink(key, "/news", "jo@example.com", map[string]any{"max": 0, "n": 1, "iat": time.Now().Add(time.Minute).Unix()})
	noIat := g.appLink(key, "/news", "jo@example.com", map[string]any{"max": 0, "n": 2})
	if r := g.send(http.MethodGet, noIat, "", nil); r.StatusCode != 200 {
		t.Fatalf("link without iat: %d", r.StatusCode)
	}
	g.cli(o, "links", "revoke", "--user", "jo@example.com")
	waitLinkStatus(t, g, noIat, http.StatusGone)
	if r := g.send(http.MethodGet, withIat, "", nil); r.StatusCode != 200 {
		t.Errorf("link issued after the revocation: %d", r.StatusCode)
	}
	if r := g.send(http.MethodGet, g.appLink(key, "/news", "jo@example.com", map[string]any{"max": 0, "n": 3}), "", nil); r.StatusCode != http.StatusGone {
		t.Errorf("new link without iat after the revocation: %d, want 410", r.StatusCode)
	}
}

// waitLinkStatus waits up to two seconds for rawURL to answer status (the CLI
// wrote the store; the gateway follows it).
func waitLinkStatus(t *testing.T, g *gateway, rawURL string, status int) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		r := g.send(http.MethodGet, rawURL, "", nil)
		if r.StatusCode == status {
			return
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%d, want %d", r.StatusCode, status)
		}
	}
}

// TestLinksKeysAfterRotation: after the gateway secret is rotated, links
// keys shows the kid "default" under the new secret (signs) and the old one
// (previous); apps' links signed with either are accepted.
func TestLinksKeysAfterRotation(t *testing.T) {
	o := gwOpts{handler: "link {\n confirm off\n}"}
	g := startGateway(t, o)
	u := g.user("rot@example.com")
	oldKey := g.hs256Key(o, "default")

	t.Setenv("LATCHKEY_TEST_OLD_SECRET", testSecret)
	rotated := gwOpts{generatedSecret: true, handler: o.handler,
		global: "secret the-rotated-new-secret-0123456789abcdef\n\t\tprevious_secrets {env.LATCHKEY_TEST_OLD_SECRET}"}
	g.load(rotated)
	recs := g.linkKeys(rotated)
	if len(recs) != 2 || recs[0].KID != "default" || recs[0].Use != "signs" || recs[1].KID != "default" || recs[1].Use != "previous" ||
		recs[1].Secret != b64url(oldKey) || recs[0].Secret == recs[1].Secret {
		t.Fatalf("links keys after the rotation: %+v", recs)
	}
	newKey := g.hs256Key(rotated, "default")
	for name, key := range map[string][]byte{"new": newKey, "previous": oldKey} {
		link := g.appLink(key, "/news", "rot@example.com", map[string]any{"max": 0, "k": name})
		if r := g.send(http.MethodGet, link, "", nil); r.StatusCode != 200 || g.upstream.last(t).Get("X-User-ID") != fmt.Sprint(u.ID) {
			t.Errorf("link signed with the %s key: %d", name, r.StatusCode)
		}
	}
	if r := g.send(http.MethodGet, g.appLink(bytes.Repeat([]byte{7}, 32), "/news", "rot@example.com", map[string]any{"max": 0}), "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("link signed with neither: %d, want 401", r.StatusCode)
	}
}
