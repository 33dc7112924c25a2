package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// cli runs `caddy latchkey <args>` in-process against the given Caddyfile.
func cli(t *testing.T, caddyfile string, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "latchkey"}
	buildCommand(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--config", caddyfile, "--adapter", "caddyfile"))
	err := root.Execute()
	return out.String(), err
}

func writeCaddyfile(t *testing.T) (path, db string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "data", "latchkey.db")
	path = filepath.Join(dir, "Caddyfile")
	cfg := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tlatchkey {\n\t\tstorage sqlite %s\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n", unusedPort(t), db)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The gateway made the store: the CLI never does.
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return path, db
}

// TestCLINeverCreatesAStore: a command whose config names a store that does
// not exist (run from another directory, say, with a relative path), or
// that finds no config at all, fails naming the path and leaves no file
// behind, instead of writing to a new, empty store the gateway never reads.
func TestCLINeverCreatesAStore(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "Caddyfile")
	// No gateway answers on the config's admin endpoint (a port nothing
	// listens on): the command opens the store itself.
	cfg := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tlatchkey {\n\t\tstorage sqlite ./data/latchkey.db\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n", unusedPort(t))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	t.Chdir(elsewhere)
	_, err := cli(t, cfgPath, "users", "list")
	want := filepath.Join(elsewhere, "data", "latchkey.db")
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "never creates") {
		t.Errorf("users list with a store that does not exist: %v, want an error naming %s", err, want)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "data")); err == nil {
		t.Error("the command created a data directory")
	}
}

func TestUsersCommands(t *testing.T) {
	cf, db := writeCaddyfile(t)
	out, err := cli(t, cf, "users", "add", "--email", " Ada@Example.COM ", "--name", "Ada Lovelace", "--phone", "+44 20 1234", "--role", "staff@app.example.com", "--json")
	if err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	var added []ops.UserJSON
	if err := json.Unmarshal([]byte(out), &added); err != nil || len(added) != 1 {
		t.Fatalf("users add --json output %q: %v", out, err)
	}
	if a := added[0]; a.Email != "ada@example.com" || a.Name != "Ada Lovelace" || !a.Active || len(a.Roles) != 1 || a.Roles[0] != "staff@app.example.com" {
		t.Errorf("added user %+v", a)
	}
	if out, err := cli(t, cf, "users", "add", "--email", "ada@example.com"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate add: err %v, out %s", err, out)
	}
	if _, err := cli(t, cf, "users", "add", "--email", "not an address"); err == nil || !strings.Contains(err.Error(), "not an email address") {
		t.Errorf("bad email: err %v", err)
	}
	if _, err := cli(t, cf, "users", "add", "--email", "x@example.com", "--role", "Staff!"); err == nil || !strings.Contains(err.Error(), "role") {
		t.Errorf("bad role: err %v", err)
	}

	out, err = cli(t, cf, "users", "deactivate", "ada@example.com")
	if err != nil || !strings.Contains(out, "false") {
		t.Fatalf("deactivate: %v\n%s", err, out)
	}
	if _, err := cli(t, cf, "users", "activate", "nobody@example.com"); err == nil || !strings.Contains(err.Error(), "nobody@example.com") {
		t.Errorf("activate unknown: err %v", err)
	}
	out, err = cli(t, cf, "users", "list")
	if err != nil || !strings.Contains(out, "ada@example.com") || !strings.Contains(out, "Ada Lovelace") {
		t.Fatalf("users list: %v\n%s", err, out)
	}

	// The CLI wrote where the config says, and the gateway would read it.
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.UserByEmail(context.Background(), "", "ada@example.com")
	if err != nil || u.Active {
		t.Fatalf("user in store: %+v %v", u, err)
	}
	if _, err := cli(t, cf, "users", "activate", fmt.Sprint(u.ID)); err != nil {
		t.Fatal(err)
	}
	if u, _ = st.User(context.Background(), u.ID); !u.Active {
		t.Error("activate by id did not activate")
	}
}

func TestAuditListCommand(t *testing.T) {
	cf, db := writeCaddyfile(t)
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := &store.User{Email: "bo@example.com", Active: true}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	evs := []store.AuditEvent{
		{Time: now.Add(-2 * time.Hour), Kind: "session", Outcome: store.OutcomeRefused, Reason: "missing", Method: "GET", Host: "h", Path: "/old", Status: 401},
		{Time: now.Add(-time.Minute), Kind: "session", Outcome: store.OutcomeRefused, Reason: "expired", Method: "GET", Host: "h", Path: "/new", Status: 401, UserID: u.ID},
		{Time: now, Kind: "session", Outcome: store.OutcomeAccepted, Method: "GET", Host: "h", Path: "/ok", Status: 200, UserID: u.ID},
	}
	if err := st.WriteAudit(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args  []string
		paths []string
	}{
		{nil, []string{"/ok", "/new", "/old"}},
		{[]string{"--since", "1h"}, []string{"/ok", "/new"}},
		{[]string{"--outcome", "refused"}, []string{"/new", "/old"}},
		{[]string{"--user", "bo@example.com", "--outcome", "refused"}, []string{"/new"}},
		{[]string{"--kind", "ticket"}, nil},
		{[]string{"--limit", "1"}, []string{"/ok"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, err := cli(t, cf, append([]string{"audit", "list", "--json"}, c.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got []ops.AuditJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			var paths []string
			for _, e := range got {
				paths = append(paths, e.Path)
			}
			if fmt.Sprint(paths) != fmt.Sprint(c.paths) {
				t.Errorf("paths %v, want %v", paths, c.paths)
			}
		})
	}
	if _, err := cli(t, cf, "audit", "list", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "yesterday") {
		t.Errorf("bad --since: %v", err)
	}
	out, err := cli(t, cf, "audit", "list")
	if err != nil || !strings.Contains(out, "expired") || !strings.Contains(out, "REASON") {
		t.Errorf("table output: %v\n%s", err, out)
	}
}

func TestSessionsCommands(t *testing.T) {
	cf, _ := writeCaddyfile(t)
	if _, err := cli(t, cf, "users", "add", "--email", "cy@example.com"); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, cf, "sessions", "create", "--user", "cy@example.com", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var created struct {
		Session ops.SessionJSON
		Cookie  string
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Cookie, "latchkey_session=") {
		t.Fatalf("sessions create output %q: %v", out, err)
	}
	out, err = cli(t, cf, "sessions", "list", "--user", "cy@example.com")
	if err != nil || !strings.Contains(out, created.Session.ID) {
		t.Fatalf("sessions list: %v\n%s", err, out)
	}
	if _, err := cli(t, cf, "sessions", "revoke", created.Session.ID); err != nil {
		t.Fatal(err)
	}
	if out, _ = cli(t, cf, "sessions", "list"); strings.Contains(out, created.Session.ID) {
		t.Errorf("revoked session still listed as active:\n%s", out)
	}
	if out, _ = cli(t, cf, "sessions", "list", "--all"); !strings.Contains(out, created.Session.ID) {
		t.Errorf("--all does not list the revoked session:\n%s", out)
	}
	if _, err := cli(t, cf, "sessions", "revoke", "nope"); err == nil {
		t.Error("revoking an unknown session succeeded")
	}
	// Lifetimes in days, as every latchkey duration.
	out, err = cli(t, cf, "sessions", "create", "--user", "cy@example.com", "--lifetime", "7d", "--json")
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("sessions create --lifetime 7d: %v\n%s", err, out)
	}
	if d := created.Session.ExpiresAt.Sub(created.Session.CreatedAt.Time); d != 7*24*time.Hour {
		t.Errorf("--lifetime 7d made a session of %v", d)
	}
	if _, err := cli(t, cf, "sessions", "create", "--user", "cy@example.com", "--lifetime", "soon"); err == nil || !strings.Contains(err.Error(), "soon") {
		t.Errorf("--lifetime soon: %v, want an error naming it", err)
	}
}

func TestInvitesCreatePromptsAtTerminal(t *testing.T) {
	cf, db := writeCaddyfile(t)
	defer func(f func() bool) { isTerminal = f }(isTerminal)

	// Not a terminal: no prompt, --email is required.
	isTerminal = func() bool { return false }
	if _, err := cli(t, cf, "invites", "create", "--domain", "app.example.com"); err == nil || !strings.Contains(err.Error(), "--email") {
		t.Fatalf("without --email and without a terminal: %v", err)
	}

	// A terminal: asked for the address.
	isTerminal = func() bool { return true }
	root := &cobra.Command{Use: "latchkey"}
	buildCommand(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetIn(strings.NewReader("ben@example.com\n"))
	root.SetArgs([]string{"invites", "create", "--domain", "app.example.com", "--config", cf, "--adapter", "caddyfile"})
	if err := root.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Email address of the person to invite:") || !strings.Contains(out.String(), "Code:") {
		t.Errorf("output:\n%s", out.String())
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	invs, err := st.Invites(context.Background(), store.InviteFilter{})
	if err != nil || len(invs) != 1 || invs[0].Email != "ben@example.com" || invs[0].Site != "default" {
		t.Fatalf("invites: %+v %v", invs, err)
	}
	// Only the hash is kept: the printed code is not in the store.
	code := ""
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Code:" {
			code = f[1]
		}
	}
	if code == "" || strings.Contains(string(invs[0].CodeHash), code) {
		t.Errorf("code %q missing from output or stored in plain text", code)
	}
}

// unusedPort is a loopback port nothing listens on: a config's admin
// endpoint there answers nobody, so commands open the store themselves.
func unusedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
