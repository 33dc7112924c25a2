package caddymodule_test

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// djangoPBKDF2 is a Django pbkdf2_sha256 hash made from Django's definition.
func djangoPBKDF2(t *testing.T, pw, salt string, iter int) string {
	t.Helper()
	dk, err := pbkdf2.Key(sha256.New, pw, []byte(salt), iter, 32)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("pbkdf2_sha256$%d$%s$%s", iter, salt, base64.StdEncoding.EncodeToString(dk))
}

// passlibPBKDF2SHA512 is a passlib pbkdf2_sha512 hash (Invenio's), made
// from passlib's definition: adapted base64 ('.' for '+', no padding) of
// the raw salt and of the 64-byte key.
func passlibPBKDF2SHA512(t *testing.T, pw string, salt []byte, rounds int) string {
	t.Helper()
	dk, err := pbkdf2.Key(sha512.New, pw, salt, rounds, 64)
	if err != nil {
		t.Fatal(err)
	}
	ab64 := func(b []byte) string { return strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(b), "+", ".") }
	return fmt.Sprintf("$pbkdf2-sha512$%d$%s$%s", rounds, ab64(salt), ab64(dk))
}

// TestPasswordLogin: through a real Caddy, a user imported with a Django
// hash signs in with the old password and is upgraded to argon2id; a wrong
// password and an unknown account get the same 401 page; ten failures at
// one account throttle it, even with the right password; a user signed in
// by other means sets a password on the sessions page and signs in with it.
func TestPasswordLogin(t *testing.T) {
	g := startGateway(t, gwOpts{handler: "password\n\t\tinvite"})
	ctx := context.Background()
	legacy := &store.User{Site: "127.0.0.1", Email: "leonard@example.com", Active: true, PasswordHash: djangoPBKDF2(t, "lètmein", "seasalt", 1000)}
	if err := g.st.CreateUser(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(email, pw string) (*http.Response, string) {
		t.Helper()
		resp, err := client.PostForm(g.url+"/.latchkey/login", url.Values{"email": {email}, "password": {pw}, "next": {"/welcome"}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	page, err := client.Get(g.url + "/.latchkey/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(b), `id="password-form"`) {
		t.Fatal("the login page has no password form")
	}

	// An Invenio user, too.
	invenio := &store.User{Site: "127.0.0.1", Email: "marie@example.com", Active: true, PasswordHash: passlibPBKDF2SHA512(t, "radium", []byte("invenio-salt-16b"), 1212)}
	if err := g.st.CreateUser(ctx, invenio); err != nil {
		t.Fatal(err)
	}
	if resp, _ := login("marie@example.com", "radium"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("Invenio password: %d, want 303", resp.StatusCode)
	}
	if got, err := g.st.User(ctx, invenio.ID); err != nil || !strings.HasPrefix(got.PasswordHash, "$argon2id$") {
		t.Errorf("the Invenio hash was not upgraded: %v", err)
	}

	wrong, wrongBody := login("leonard@example.com", "letmein")
	unknown, unknownBody := login("nobody@example.com", "lètmein")
	if wrong.StatusCode != http.StatusUnauthorized || unknown.StatusCode != http.StatusUnauthorized || wrongBody != unknownBody {
		t.Errorf("wrong password %d, unknown account %d, same page %v; want 401 and the same page", wrong.StatusCode, unknown.StatusCode, wrongBody == unknownBody)
	}
	resp, _ := login("Leonard@Example.com", "lètmein")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/welcome" {
		t.Fatalf("right password: %d %q, want 303 to /welcome", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sessionCookie string
	for _, c := range resp.Cookies() {
		if c.Name == "latchkey_session" {
			sessionCookie = c.Value
		}
	}
	if r := g.get("/private", cookie(sessionCookie)); r.StatusCode != http.StatusOK || g.upstream.last(t).Get("X-User-ID") != fmt.Sprint(legacy.ID) {
		t.Errorf("the new session: %d", r.StatusCode)
	}
	u, err := g.st.User(ctx, legacy.ID)
	if err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") || u.LoginCount != 1 {
		t.Errorf("after the login: hash %.12q…, %d logins; want argon2id and 1", u.PasswordHash, u.LoginCount)
	}
	if resp, _ := login("leonard@example.com", "lètmein"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the upgraded hash refuses the password: %d", resp.StatusCode)
	}
	g.waitAudit(store.AuditFilter{Kind: "password", Reason: "password_upgraded"}, 1)

	// Ten failures from one address (two above, eight here): the next
	// attempt is throttled, right password or not, before any hashing.
	for i := range 8 {
		if resp, _ := login("leonard@example.com", fmt.Sprintf("guess-%d", i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := login("leonard@example.com", "lètmein"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after ten failures: %d, want 429", resp.StatusCode)
	}
	if evs := g.waitAudit(store.AuditFilter{Kind: "password", Reason: "throttled"}, 1); len(evs) == 0 {
		t.Error("the throttled attempt is not audited")
	}

}

// TestSetPasswordOnSessionsPage: a user signed in by other means sets a
// password on the sessions page (long enough), signs in with it, and
// changes it only by giving the current one.
func TestSetPasswordOnSessionsPage(t *testing.T) {
	g := startGateway(t, gwOpts{handler: "password\n\t\tinvite"})
	ctx := context.Background()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(email, pw string) *http.Response {
		t.Helper()
		resp, err := client.PostForm(g.url+"/.latchkey/login", url.Values{"email": {email}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	invited := &store.User{Site: "127.0.0.1", Email: "ines@example.com", Active: true}
	if err := g.st.CreateUser(ctx, invited); err != nil {
		t.Fatal(err)
	}
	tok, _ := g.session(invited, time.Now())
	set := func(form url.Values) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, g.url+"/.latchkey/sessions", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", "latchkey_session="+tok)
		return g.do(req).StatusCode
	}
	if st := set(url.Values{"new_password": {"short"}}); st != http.StatusBadRequest {
		t.Errorf("a short password: %d, want 400", st)
	}
	if st := set(url.Values{"new_password": {"correct horse battery"}}); st != http.StatusOK {
		t.Fatalf("setting a password: %d", st)
	}
	if resp := login("ines@example.com", "correct horse battery"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login with the password set: %d", resp.StatusCode)
	}
	// In a session the password started, changing it needs the current one.
	resp := login("ines@example.com", "correct horse battery")
	for _, c := range resp.Cookies() {
		if c.Name == "latchkey_session" {
			tok = c.Value
		}
	}
	if st := set(url.Values{"new_password": {"another long one"}, "current_password": {"wrong"}}); st != http.StatusBadRequest {
		t.Errorf("changing without the current password: %d, want 400", st)
	}
	if st := set(url.Values{"new_password": {"another long one"}, "current_password": {"correct horse battery"}}); st != http.StatusOK {
		t.Errorf("changing with the current password: %d", st)
	}
	// Forgotten: a session started by a sign-in link (the mailbox proved)
	// sets a new one without the old.
	m := session.New(g.st, g.secret, session.Config{Site: "127.0.0.1"}, nil, nil)
	var err error
	if tok, _, err = m.Start(ctx, invited.ID, "link", "", "127.0.0.1", "go-test"); err != nil {
		t.Fatal(err)
	}
	if st := set(url.Values{"new_password": {"a brand new one"}}); st != http.StatusOK {
		t.Errorf("replacing a forgotten password from a link's session: %d, want 200", st)
	}
	if resp := login("ines@example.com", "a brand new one"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login with the replaced password: %d", resp.StatusCode)
	}
}
