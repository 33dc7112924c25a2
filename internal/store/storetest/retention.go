package storetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// retentionTests are the retention part of the suite; Run runs them with
// the rest.
var retentionTests = []struct {
	name string
	f    func(t *testing.T, s store.Store)
}{
	{"Retain", testRetain},
	{"RetainBatches", testRetainBatches},
	{"RetainNothing", testRetainNothing},
}

const day = 24 * time.Hour

// retainSession creates a session started at created (days from base),
// ending at expires, revoked at revoked unless that is zero.
func retainSession(t *testing.T, s store.Store, u *store.User, id string, created, expires, revoked time.Duration) {
	t.Helper()
	sess := newSession(u, id, at(created))
	sess.ExpiresAt = at(expires)
	if err := s.CreateSession(t.Context(), sess); err != nil {
		t.Fatalf("CreateSession(%s): %v", id, err)
	}
	if revoked != 0 {
		if err := s.RevokeSession(t.Context(), id, at(revoked)); err != nil {
			t.Fatalf("RevokeSession(%s): %v", id, err)
		}
	}
}

// sessionsByID lists every session the store keeps.
func sessionsByID(t *testing.T, s store.Store) map[string]store.Session {
	t.Helper()
	ss, err := s.Sessions(t.Context(), store.SessionFilter{})
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	out := map[string]store.Session{}
	for _, x := range ss {
		out[x.ID] = x
	}
	return out
}

// auditByPath lists every audit record the store keeps, by path (the
// tests give each its own).
func auditByPath(t *testing.T, s store.Store) map[string]store.AuditEvent {
	t.Helper()
	evs, err := s.Audit(t.Context(), store.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	out := map[string]store.AuditEvent{}
	for _, e := range evs {
		out[e.Path] = e
	}
	return out
}

func mustRetain(t *testing.T, s store.Store, p store.RetainPolicy, want store.RetainResult) {
	t.Helper()
	got, err := s.Retain(t.Context(), p)
	if err != nil {
		t.Fatalf("Retain: %v", err)
	}
	if got != want {
		t.Errorf("Retain(%s) = %+v, want %+v", describePolicy(p), got, want)
	}
}

func describePolicy(p store.RetainPolicy) string {
	f := func(x time.Time) string {
		if x.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%+.2gd", x.Sub(base).Hours()/24)
	}
	return fmt.Sprintf("sessions %s, IPs %s, audit %s, batch %d", f(p.SessionsEndedBefore), f(p.IPsBefore), f(p.AuditBefore), p.Batch)
}

// testRetain: with the clock at base, sessions that ended (expired or were
// revoked) more than a week ago go; addresses older than 30 days are
// blanked in sessions, logins and audit records, newer ones kept; audit
// records are deleted only when asked. Cuts are strict: what is exactly as
// old as a cut stays. A second run finds nothing; a later one, with the
// clock moved on, the next rows.
func testRetain(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "wiki.example.org", "old@example.org")
	v := mustCreateUser(t, s, "wiki.example.org", "recent@example.org")
	w := mustCreateUser(t, s, "wiki.example.org", "never@example.org")
	// u: both logins old. v: the last old, the current fresh.
	for _, l := range []struct {
		u  *store.User
		at time.Duration
		ip string
	}{
		{u, -40 * day, "192.0.2.1"}, {u, -35 * day, "192.0.2.2"},
		{v, -40 * day, "192.0.2.3"}, {v, -day, "192.0.2.4"},
	} {
		if err := s.RecordLogin(ctx, l.u.ID, at(l.at), l.ip); err != nil {
			t.Fatalf("RecordLogin: %v", err)
		}
	}

	retainSession(t, s, u, "expired-long-ago", -60*day, -10*day, 0)     // deleted
	retainSession(t, s, u, "revoked-long-ago", -20*day, 10*day, -8*day) // deleted: revoked counts as ended
	retainSession(t, s, u, "expired-recently", -40*day, -3*day, 0)      // kept, address blanked
	retainSession(t, s, v, "revoked-recently", -2*day, 20*day, -day)    // kept as it is
	retainSession(t, s, v, "active-old", -45*day, 5*day, 0)             // kept, address blanked
	retainSession(t, s, v, "active-fresh", -time.Hour, 30*day, 0)       // kept as it is
	retainSession(t, s, w, "ended-at-cut", -30*day, -7*day, 0)          // exactly at both cuts: kept as it is

	var evs []store.AuditEvent
	for _, r := range []struct {
		path string
		at   time.Duration
		ip   string
	}{
		{"/400d", -400 * day, "203.0.113.1"},
		{"/200d-no-ip", -200 * day, ""},
		{"/100d", -100 * day, "203.0.113.2"},
		{"/31d", -31 * day, "2001:db8::31"},
		{"/30d", -30 * day, "203.0.113.3"},
		{"/29d", -29 * day, "203.0.113.4"},
		{"/1h", -time.Hour, "203.0.113.5"},
	} {
		evs = append(evs, store.AuditEvent{
			Time: at(r.at), Kind: "session", Outcome: store.OutcomeAccepted, Method: "GET",
			Host: "wiki.example.org", Path: r.path, Status: 200, ClientIP: r.ip, UserAgent: "Firefox/128.0", UserID: u.ID,
		})
	}
	if err := s.WriteAudit(ctx, evs); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}

	p := store.RetainPolicy{SessionsEndedBefore: at(-7 * day), IPsBefore: at(-30 * day)}
	mustRetain(t, s, p, store.RetainResult{SessionsDeleted: 2, SessionIPsBlanked: 2, LoginIPsBlanked: 3, AuditIPsBlanked: 3})

	ss := sessionsByID(t, s)
	wantIP := map[string]string{
		"expired-recently": "", "revoked-recently": "198.51.100.7", "active-old": "",
		"active-fresh": "198.51.100.7", "ended-at-cut": "198.51.100.7",
	}
	if len(ss) != len(wantIP) {
		t.Errorf("sessions kept: %v, want %d", slices.Sorted(maps.Keys(ss)), len(wantIP))
	}
	for id, ip := range wantIP {
		x, ok := ss[id]
		switch {
		case !ok:
			t.Errorf("session %s was deleted", id)
		case x.IP != ip:
			t.Errorf("session %s: IP %q, want %q", id, x.IP, ip)
		case x.UserAgent == "" || x.CredentialID == "" || !x.ExpiresAt.After(base.Add(-8*day)):
			t.Errorf("session %s changed beyond its address: %+v", id, x)
		}
	}

	for _, c := range []struct {
		u             *store.User
		current, last string
	}{{u, "", ""}, {v, "192.0.2.4", ""}, {w, "", ""}} {
		got := mustUser(t, s, c.u.ID)
		if got.CurrentLoginIP != c.current || got.LastLoginIP != c.last {
			t.Errorf("user %s: current login IP %q, last %q; want %q, %q", got.Email, got.CurrentLoginIP, got.LastLoginIP, c.current, c.last)
		}
		if c.u != w && (got.CurrentLoginAt.IsZero() || got.LastLoginAt.IsZero() || got.LoginCount != 2) {
			t.Errorf("user %s: login times or count changed: %+v", got.Email, got)
		}
	}

	wantAudit := map[string]string{
		"/400d": "", "/200d-no-ip": "", "/100d": "", "/31d": "",
		"/30d": "203.0.113.3", "/29d": "203.0.113.4", "/1h": "203.0.113.5",
	}
	checkAudit := func(when string, want map[string]string) {
		t.Helper()
		got := auditByPath(t, s)
		if len(got) != len(want) {
			t.Errorf("%s: %d audit records kept, want %d", when, len(got), len(want))
		}
		for path, ip := range want {
			e, ok := got[path]
			switch {
			case !ok:
				t.Errorf("%s: audit record %s was deleted", when, path)
			case e.ClientIP != ip:
				t.Errorf("%s: audit record %s: client IP %q, want %q", when, path, e.ClientIP, ip)
			case e.UserAgent == "" || e.Host == "" || e.UserID != u.ID || e.Status != 200:
				t.Errorf("%s: audit record %s changed beyond its address: %+v", when, path, e)
			}
		}
	}
	checkAudit("first run", wantAudit)

	// Idempotent.
	mustRetain(t, s, p, store.RetainResult{})

	// Audit records go only when asked: those before 90 days.
	p.AuditBefore = at(-90 * day)
	mustRetain(t, s, p, store.RetainResult{AuditDeleted: 3})
	for _, path := range []string{"/400d", "/200d-no-ip", "/100d"} {
		delete(wantAudit, path)
	}
	checkAudit("deleting audit records", wantAudit)
	mustRetain(t, s, p, store.RetainResult{})

	// Two days on: "ended-at-cut" ended 9 days ago and goes; the audit
	// records of 30 and 29 days ago (now 32 and 31) lose their addresses.
	// The session started 30 days ago goes before its address is blanked.
	later := store.RetainPolicy{SessionsEndedBefore: at(2*day - 7*day), IPsBefore: at(2*day - 30*day), AuditBefore: at(2*day - 90*day)}
	mustRetain(t, s, later, store.RetainResult{SessionsDeleted: 1, AuditIPsBlanked: 2})
	wantAudit["/30d"], wantAudit["/29d"] = "", ""
	checkAudit("two days on", wantAudit)
	if ss := sessionsByID(t, s); len(ss) != 4 || ss["active-fresh"].IP == "" || ss["revoked-recently"].IP == "" {
		t.Errorf("two days on, sessions %v, want 4: ended-at-cut gone, the fresh ones' addresses kept", slices.Sorted(maps.Keys(ss)))
	}
	mustRetain(t, s, later, store.RetainResult{})
}

// testRetainBatches: a run of small batches gets through more rows than a
// batch, records sharing a time across a batch's end included, and counts
// each row once.
func testRetainBatches(t *testing.T, s store.Store) {
	ctx := t.Context()
	var users []*store.User
	for i := range 5 {
		u := mustCreateUser(t, s, "", fmt.Sprintf("batch%d@example.org", i))
		for _, d := range []time.Duration{-50 * day, -40 * day} {
			if err := s.RecordLogin(ctx, u.ID, at(d), "192.0.2.9"); err != nil {
				t.Fatal(err)
			}
		}
		users = append(users, u)
	}
	for i := range 7 {
		retainSession(t, s, users[i%len(users)], fmt.Sprintf("gone-%d", i), -60*day, -20*day, 0)
	}
	for i := range 5 {
		retainSession(t, s, users[i], fmt.Sprintf("old-%d", i), -40*day, 20*day, 0)
	}
	var evs []store.AuditEvent
	// Eleven records, five of them at one instant, and a newer one.
	for i := range 11 {
		when := at(-40*day + time.Duration(i)*time.Minute)
		if i >= 3 && i < 8 {
			when = at(-35 * day)
		}
		evs = append(evs, store.AuditEvent{Time: when, Kind: "ticket", Outcome: store.OutcomeRefused, Reason: "wrong_password",
			Host: "h.example.org", Path: fmt.Sprintf("/%d", i), ClientIP: "203.0.113.9"})
	}
	evs = append(evs, store.AuditEvent{Time: at(-day), Kind: "ticket", Outcome: store.OutcomeRefused, Host: "h.example.org", Path: "/new", ClientIP: "203.0.113.10"})
	if err := s.WriteAudit(ctx, evs); err != nil {
		t.Fatal(err)
	}
	p := store.RetainPolicy{SessionsEndedBefore: at(-7 * day), IPsBefore: at(-30 * day), Batch: 2}
	mustRetain(t, s, p, store.RetainResult{SessionsDeleted: 7, SessionIPsBlanked: 5, LoginIPsBlanked: 10, AuditIPsBlanked: 11})
	for path, e := range auditByPath(t, s) {
		if (e.ClientIP == "") != (path != "/new") {
			t.Errorf("audit record %s: client IP %q", path, e.ClientIP)
		}
	}
	mustRetain(t, s, p, store.RetainResult{})

	p.AuditBefore = at(-30 * day)
	mustRetain(t, s, p, store.RetainResult{AuditDeleted: 11})
	if got := auditByPath(t, s); len(got) != 1 || got["/new"].ClientIP != "203.0.113.10" {
		t.Errorf("after deleting in batches: %+v", got)
	}
}

// testRetainNothing: a policy with no cuts changes nothing, and a store
// with nothing to remove reports nothing.
func testRetainNothing(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustRetain(t, s, store.RetainPolicy{SessionsEndedBefore: at(0), IPsBefore: at(0), AuditBefore: at(0)}, store.RetainResult{})
	u := mustCreateUser(t, s, "", "keep@example.org")
	if err := s.RecordLogin(ctx, u.ID, at(-100*day), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	retainSession(t, s, u, "ended", -100*day, -90*day, 0)
	if err := s.WriteAudit(ctx, []store.AuditEvent{{Time: at(-100 * day), Kind: "session", Path: "/old", ClientIP: "203.0.113.1"}}); err != nil {
		t.Fatal(err)
	}
	mustRetain(t, s, store.RetainPolicy{}, store.RetainResult{})
	if got := mustUser(t, s, u.ID); got.CurrentLoginIP != "192.0.2.1" {
		t.Errorf("login IP %q after an empty policy", got.CurrentLoginIP)
	}
	if ss := sessionsByID(t, s); ss["ended"].IP != "198.51.100.7" {
		t.Errorf("session after an empty policy: %q, want it kept with its address", ss["ended"].IP)
	}
	if a := auditByPath(t, s); a["/old"].ClientIP != "203.0.113.1" {
		t.Errorf("audit after an empty policy: %+v", a)
	}
}
