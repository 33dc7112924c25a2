package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A session the CLI starts belongs to the config's site, so the gateway
// takes its cookie; for a site the config does not serve it refuses.
func TestCLISessionWorksOnItsSite(t *testing.T) {
	o := gwOpts{}
	g := startGateway(t, o)
	u := g.user("cli@example.com")
	out := g.cli(o, "sessions", "create", "--user", u.Email, "--json")
	var created struct {
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
		Cookie string `json:"cookie"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("sessions create --json: %q: %v", out, err)
	}
	_, token, _ := strings.Cut(created.Cookie, "=")
	resp := g.get("/from-cli", cookie(token))
	if resp.StatusCode != http.StatusOK || g.upstream.last(t).Get("X-Session-ID") != created.Session.ID {
		t.Fatalf("the CLI's session: %d", resp.StatusCode)
	}
	if _, err := g.cliErr(o, "sessions", "create", "--user", u.Email, "--site", "elsewhere.example"); err == nil {
		t.Error("a session was made for a site the config does not serve")
	}
}
