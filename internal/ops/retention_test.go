package ops_test

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/store"
)

const day = 24 * time.Hour

func TestRetentionValidate(t *testing.T) {
	ok := []ops.Retention{
		{},
		{Every: time.Minute, IPs: time.Hour, Sessions: time.Nanosecond},
		{IPs: 7 * day, Audit: 7 * day},
		{Audit: 365 * day},
		{IPs: 90 * day, Audit: 90 * day, Sessions: 400 * day, Every: 24 * time.Hour},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []struct {
		r    ops.Retention
		want string
	}{
		{ops.Retention{Every: 30 * time.Second}, "retention every 30s: the janitor runs at most once a minute"},
		{ops.Retention{IPs: 30 * time.Minute}, "retention retain_ip 30m: keep addresses at least 1h"},
		{ops.Retention{Sessions: -day}, "retention retain_sessions -1d: a duration cannot be negative"},
		{ops.Retention{Audit: -time.Hour}, "retention retain_audit -1h: a duration cannot be negative"},
		{ops.Retention{IPs: 30 * day, Audit: 7 * day}, "retention retain_audit 7d is shorter than retain_ip 30d: IP addresses of sessions and logins would outlive the audit trail; set retain_ip to 7d or less"},
		// Against the default retain_ip, too: the operator learns that
		// addresses elsewhere are kept 30 days.
		{ops.Retention{Audit: 7 * day}, "retain_ip 30d (the default)"},
	}
	for _, c := range bad {
		err := c.r.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one with %q", c.r, err, c.want)
		}
	}
}

func TestRetentionPolicy(t *testing.T) {
	p := ops.Retention{}.Policy(now)
	want := store.RetainPolicy{SessionsEndedBefore: now.Add(-7 * day), IPsBefore: now.Add(-30 * day)}
	if p != want {
		t.Errorf("default policy at %v: %+v, want %+v", now, p, want)
	}
	p = ops.Retention{IPs: 10 * day, Sessions: time.Hour, Audit: 90 * day}.Policy(now)
	want = store.RetainPolicy{SessionsEndedBefore: now.Add(-time.Hour), IPsBefore: now.Add(-10 * day), AuditBefore: now.Add(-90 * day)}
	if p != want {
		t.Errorf("policy: %+v, want %+v", p, want)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * day: "30d", -day: "-1d", time.Hour: "1h", 90 * time.Minute: "1h30m", time.Minute: "1m",
		30 * time.Second: "30s", 36 * time.Hour: "36h", 0: "0s",
	} {
		if got := ops.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestRunJanitor: with the clock injected, a run blanks addresses older
// than retain_ip and deletes sessions that ended more than retain_sessions
// ago; fresh ones are untouched. A run a month later, with the same rows,
// takes the rest.
func TestRunJanitor(t *testing.T) {
	ctx := t.Context()
	o := newOps(t)
	st := o.Store
	u := &store.User{Email: "ann@example.org", Active: true}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordLogin(ctx, u.ID, now.Add(-40*day), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordLogin(ctx, u.ID, now.Add(-2*day), "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	sessions := []struct {
		id               string
		created, expires time.Duration
	}{
		{"expired", -60 * day, -30 * day},
		{"old-active", -35 * day, 25 * day},
		{"fresh", -time.Hour, 30 * day},
	}
	for _, s := range sessions {
		err := st.CreateSession(ctx, &store.Session{ID: s.id, UserID: u.ID, TokenHash: []byte(s.id), CreatedAt: now.Add(s.created),
			ExpiresAt: now.Add(s.expires), IP: "198.51.100.1"})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.WriteAudit(ctx, []store.AuditEvent{
		{Time: now.Add(-31 * day), Kind: "session", Path: "/old", ClientIP: "203.0.113.1"},
		{Time: now.Add(-time.Minute), Kind: "session", Path: "/new", ClientIP: "203.0.113.2"},
	}); err != nil {
		t.Fatal(err)
	}

	run, err := ops.RunJanitor(ctx, st, ops.Retention{}, now)
	if err != nil {
		t.Fatal(err)
	}
	got := [5]int{run.SessionsDeleted, run.SessionIPsBlanked, run.LoginIPsBlanked, run.AuditIPsBlanked, run.AuditDeleted}
	if got != [5]int{1, 1, 1, 1, 0} {
		t.Errorf("run: %+v", run)
	}
	if !run.IPsBefore.Equal(now.Add(-30*day)) || !run.SessionsEndedBefore.Equal(now.Add(-7*day)) || !run.AuditBefore.IsZero() {
		t.Errorf("run's cuts: %+v", run)
	}
	ss, err := st.Sessions(ctx, store.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, s := range ss {
		ips[s.ID] = s.IP
	}
	if len(ips) != 2 || ips["old-active"] != "" || ips["fresh"] != "198.51.100.1" {
		t.Errorf("sessions after the run (id: IP): %v; want expired gone, old-active blanked, fresh kept", ips)
	}
	if got, _ := st.User(ctx, u.ID); got.CurrentLoginIP != "192.0.2.2" || got.LastLoginIP != "" {
		t.Errorf("logins after the run: current %q, last %q", got.CurrentLoginIP, got.LastLoginIP)
	}
	evs, err := st.Audit(ctx, store.AuditFilter{})
	if err != nil || len(evs) != 2 || evs[0].ClientIP != "203.0.113.2" || evs[1].ClientIP != "" {
		t.Errorf("audit after the run: %+v, %v", evs, err)
	}

	// A month on, with audit records kept 60 days: the rest goes, and the
	// record of 62 days ago with it.
	later := now.Add(31 * day)
	run, err = ops.RunJanitor(ctx, st, ops.Retention{Audit: 60 * day}, later)
	if err != nil {
		t.Fatal(err)
	}
	got = [5]int{run.SessionsDeleted, run.SessionIPsBlanked, run.LoginIPsBlanked, run.AuditIPsBlanked, run.AuditDeleted}
	if got != [5]int{0, 1, 1, 1, 1} || run.AuditBefore.IsZero() || !run.AuditBefore.Equal(later.Add(-60*day)) {
		t.Errorf("a month on: %+v", run)
	}

	// A bad policy is refused before the store is touched.
	if _, err := ops.RunJanitor(ctx, st, ops.Retention{IPs: time.Minute}, later); err == nil {
		t.Error("RunJanitor with retain_ip 1m: no error")
	}
}
