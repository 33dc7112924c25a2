package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

const day = 24 * time.Hour

// janitorStore fills a SQLite store, with times relative to now: a user
// whose last login is old and current one fresh, a session that ended
// long ago, one started long ago and still running, a fresh one, and
// audit records of 100 days, 40 days and a minute ago.
func janitorStore(t *testing.T, db string, now time.Time) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &store.User{Email: "ann@example.org", Active: true}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		at time.Duration
		ip string
	}{{-50 * day, "192.0.2.1"}, {-time.Hour, "192.0.2.2"}} {
		if err := st.RecordLogin(ctx, u.ID, now.Add(l.at), l.ip); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		id               string
		created, expires time.Duration
	}{{"ended", -60 * day, -20 * day}, {"long", -40 * day, 20 * day}, {"fresh", -time.Hour, 30 * day}} {
		if err := st.CreateSession(ctx, &store.Session{ID: s.id, UserID: u.ID, TokenHash: []byte(s.id),
			CreatedAt: now.Add(s.created), ExpiresAt: now.Add(s.expires), IP: "198.51.100.1", UserAgent: "Firefox/128.0"}); err != nil {
			t.Fatal(err)
		}
	}
	var evs []store.AuditEvent
	for _, d := range []time.Duration{-100 * day, -40 * day, -time.Minute} {
		evs = append(evs, store.AuditEvent{Time: now.Add(d), Kind: "session", Outcome: store.OutcomeAccepted,
			Host: "h.example.org", Path: fmt.Sprintf("/%v", d), ClientIP: "203.0.113.1", UserID: u.ID})
	}
	if err := st.WriteAudit(ctx, evs); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestJanitorRunCommand runs `caddy latchkey janitor run` on a SQLite
// store with the config's retention: ended sessions and audit records past
// retain_audit go, old addresses are blanked, fresh rows are untouched; a
// second run finds nothing.
func TestJanitorRunCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "latchkey.db")
	cf := filepath.Join(dir, "Caddyfile")
	cfg := fmt.Sprintf("{\n\tlatchkey {\n\t\tstorage sqlite %s\n\t\tretention {\n\t\t\tretain_ip 30d\n\t\t\tretain_audit 90d\n\t\t}\n\t}\n}\n:8080 {\n\tlatchkey\n\trespond ok\n}\n", db)
	if err := os.WriteFile(cf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	st := janitorStore(t, db, before)

	out, err := cli(t, cf, "janitor", "run", "--json")
	if err != nil {
		t.Fatalf("janitor run: %v\n%s", err, out)
	}
	var run struct {
		ops.JanitorRun
		Took string `json:"took"`
	}
	if err := json.Unmarshal([]byte(out), &run); err != nil {
		t.Fatalf("janitor run --json output %q: %v", out, err)
	}
	got := [5]int{run.SessionsDeleted, run.SessionIPsBlanked, run.LoginIPsBlanked, run.AuditIPsBlanked, run.AuditDeleted}
	if got != [5]int{1, 1, 1, 1, 1} {
		t.Errorf("janitor run: %s", out)
	}
	if ips := run.IPsBefore.Sub(before.Add(-30 * day)); ips < 0 || ips > time.Minute || run.AuditBefore.IsZero() || run.Took == "" {
		t.Errorf("janitor run's cuts: %s", out)
	}

	ctx := context.Background()
	ss, err := st.Sessions(ctx, store.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, s := range ss {
		ips[s.ID] = s.IP
	}
	if len(ips) != 2 || ips["long"] != "" || ips["fresh"] != "198.51.100.1" {
		t.Errorf("sessions after the run (id: IP): %v; want ended gone, long blanked, fresh kept", ips)
	}
	u, err := st.UserByEmail(ctx, "", "ann@example.org")
	if err != nil || u.CurrentLoginIP != "192.0.2.2" || u.LastLoginIP != "" {
		t.Errorf("user after the run: %+v, %v", u, err)
	}
	evs, err := st.Audit(ctx, store.AuditFilter{})
	if err != nil || len(evs) != 2 || evs[0].ClientIP != "203.0.113.1" || evs[1].ClientIP != "" {
		t.Errorf("audit after the run: %+v, %v", evs, err)
	}

	out, err = cli(t, cf, "janitor", "run")
	if err != nil {
		t.Fatalf("second janitor run: %v\n%s", err, out)
	}
	for _, want := range []string{"sessions deleted", "retain_sessions 7d", "retain_ip 30d", "retain_audit 90d", "audit records deleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("janitor run output lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "took") {
			continue
		}
		// The count is the first field that is a number.
		for _, f := range strings.Fields(line) {
			if _, err := strconv.Atoi(f); err == nil {
				if f != "0" {
					t.Errorf("second run did something: %q", line)
				}
				break
			}
		}
	}
}

// TestJanitorRunCommandRefusesBadRetention: the CLI checks the config's
// retention as the gateway does (a JSON config is not checked by the
// Caddyfile adapter).
func TestJanitorRunCommandRefusesBadRetention(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "caddy.json")
	cfg := fmt.Sprintf(`{"apps": {"latchkey": {"storage": {"path": %q}, "retention": {"retain_ip": 3600000000000, "retain_audit": 60000000000}}}}`,
		filepath.Join(dir, "latchkey.db"))
	if err := os.WriteFile(cf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	root := &cobra.Command{Use: "latchkey"}
	buildCommand(root)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"janitor", "run", "--config", cf})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "retain_audit 1m is shorter than retain_ip 1h") {
		t.Errorf("janitor run with retain_audit < retain_ip: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "latchkey.db")); serr == nil {
		t.Error("the store was opened (and created) before the retention was checked")
	}
}

// TestJanitorScheduleLogs: the app runs the retention at start and logs
// the run's counts at INFO; Stop waits for the janitor to stop.
func TestJanitorScheduleLogs(t *testing.T) {
	db := filepath.Join(t.TempDir(), "latchkey.db")
	st := janitorStore(t, db, time.Now())
	core, logs := observer.New(zapcore.InfoLevel)
	a := &App{store: st, logger: zap.New(core), sessions: session.NewCache(0)}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var entries []observer.LoggedEntry
	for len(entries) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		entries = logs.FilterMessage("retention janitor ran").All()
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.stopped:
	default:
		t.Error("Stop returned before the janitor stopped")
	}
	if len(entries) != 1 {
		t.Fatalf("logged %d retention runs, want 1; all logs: %v", len(entries), logs.All())
	}
	e := entries[0]
	if e.Level != zapcore.InfoLevel {
		t.Errorf("logged at %v", e.Level)
	}
	want := map[string]int64{"sessions_deleted": 1, "session_ips_blanked": 1, "login_ips_blanked": 1, "audit_ips_blanked": 2, "audit_deleted": 0}
	fields := e.ContextMap()
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("logged %s = %v, want %d (all: %v)", k, fields[k], v, fields)
		}
	}
	if _, ok := fields["took"]; !ok {
		t.Errorf("no took in %v", fields)
	}
}
