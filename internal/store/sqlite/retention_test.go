package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestRetainPlans: retention finds its rows by an index, not by reading
// sessions or the audit trail whole on every run (users, a row per person,
// it reads).
func TestRetainPlans(t *testing.T) {
	s := openTemp(t)
	for _, q := range []string{retainSessionsSQL, retainSessionIPsSQL, retainAuditSQL, retainAuditIPsNextSQL, retainAuditIPsSQL} {
		rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+q, 1, 2, 3)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN sessions") || strings.HasPrefix(step, "SCAN audit") {
				t.Errorf("%s\nreads a table whole: %s", q, strings.Join(plan, "; "))
			}
		}
	}
}

// TestRetainMark: the audit trail's mark moves to the cut, and only
// forward; a record written later before it keeps its address (the
// trade-off Retention documents).
func TestRetainMark(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	base := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	write := func(at time.Time, path string) {
		t.Helper()
		if err := s.WriteAudit(ctx, []store.AuditEvent{{Time: at, Kind: "session", Path: path, ClientIP: "203.0.113.1"}}); err != nil {
			t.Fatal(err)
		}
	}
	mark := func() int64 {
		t.Helper()
		var raw []byte
		if err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, auditIPsMark).Scan(&raw); err != nil {
			t.Fatalf("reading the mark: %v", err)
		}
		return parseMark(raw)
	}
	write(base.Add(-time.Hour), "/a")
	r, err := s.Retain(ctx, store.RetainPolicy{IPsBefore: base})
	if err != nil || r.AuditIPsBlanked != 1 {
		t.Fatalf("Retain: %+v, %v", r, err)
	}
	if m := mark(); m != base.UnixNano() {
		t.Errorf("mark %v, want the cut %v", time.Unix(0, m).UTC(), base)
	}
	// An earlier cut leaves the mark where it is.
	if _, err := s.Retain(ctx, store.RetainPolicy{IPsBefore: base.Add(-24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if m := mark(); m != base.UnixNano() {
		t.Errorf("an earlier cut moved the mark to %v", time.Unix(0, m).UTC())
	}
	write(base.Add(-2*time.Hour), "/late")
	if r, err := s.Retain(ctx, store.RetainPolicy{IPsBefore: base.Add(time.Hour)}); err != nil || r.AuditIPsBlanked != 0 {
		t.Errorf("Retain after a late record: %+v, %v; want the record before the mark left alone", r, err)
	}
}

// fillForRetain writes n rows of each kind the janitor handles, in one
// transaction: users with both logins 40 days before now, sessions that
// ended 20 days before it and audit records with addresses from 40 days
// before it on, a millisecond apart.
func fillForRetain(b *testing.B, s *Store, now time.Time, n int) {
	b.Helper()
	old := now.Add(-40 * 24 * time.Hour).UnixNano()
	ended := now.Add(-20 * 24 * time.Hour).UnixNano()
	for _, q := range []string{
		`WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?1)
		INSERT INTO users (email, created_at, current_login_at, current_login_ip, last_login_at, last_login_ip, login_count)
		SELECT 'u' || x || '@example.org', ?2, ?2, '192.0.2.1', ?2, '192.0.2.2', 2 FROM i`,
		`WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?1)
		INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent)
		SELECT 's' || x, randomblob(32), x, ?2, ?2, ?3, '192.0.2.3', 'Firefox/128.0' FROM i`,
		`WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?1)
		INSERT INTO audit (time, kind, outcome, method, host, path, status, client_ip, user_agent)
		SELECT ?2 + x * 1000000, 'session', 'accepted', 'GET', 'wiki.example.org', '/p/' || x, 200, '203.0.113.42', 'Firefox/128.0' FROM i`,
	} {
		if _, err := s.w.ExecContext(b.Context(), q, n, old, ended); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRetain is one janitor run over a store holding 100,000 users
// with old logins, 100,000 ended sessions and 100,000 audit records with
// old addresses, in batches of DefaultRetainBatch: ns/row is per row removed or
// blanked, ms/batch how long a batch holds the writer on average.
func BenchmarkRetain(b *testing.B) {
	const n = 100000
	now := time.Now()
	p := store.RetainPolicy{
		SessionsEndedBefore: now.Add(-7 * 24 * time.Hour),
		IPsBefore:           now.Add(-30 * 24 * time.Hour),
	}
	var rows, batches int
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := openTemp(b)
		fillForRetain(b, s, now, n)
		b.StartTimer()
		start := time.Now()
		r, err := s.Retain(b.Context(), p)
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		want := store.RetainResult{SessionsDeleted: n, LoginIPsBlanked: 2 * n, AuditIPsBlanked: n}
		if r != want {
			b.Fatalf("Retain = %+v, want %+v", r, want)
		}
		rows += r.SessionsDeleted + r.LoginIPsBlanked + r.AuditIPsBlanked
		// Users go by windows of ids; the other steps end with a batch
		// that finds nothing.
		batches += 4*n/store.DefaultRetainBatch + 2
		b.StopTimer()
		s.Close()
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(rows), "ns/row")
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(batches), "ms/batch")
}

// BenchmarkRetainNothing is a run that finds nothing to do over the same
// store once it has been cleaned: what the hourly janitor costs most of
// the time. The users' table is read whole (twice); the rest are index
// probes.
func BenchmarkRetainNothing(b *testing.B) {
	const n = 100000
	now := time.Now()
	p := store.RetainPolicy{
		SessionsEndedBefore: now.Add(-7 * 24 * time.Hour),
		IPsBefore:           now.Add(-30 * 24 * time.Hour),
	}
	s := openTemp(b)
	fillForRetain(b, s, now, n)
	if _, err := s.Retain(b.Context(), p); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := s.Retain(b.Context(), p)
		if err != nil || r != (store.RetainResult{}) {
			b.Fatalf("Retain = %+v, %v; want nothing to do", r, err)
		}
	}
}
