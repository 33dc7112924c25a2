package storetest

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// statsTests are the dashboard figures' part of the suite; Run runs them
// with the rest.
var statsTests = []struct {
	name string
	f    func(t *testing.T, s store.Store)
}{
	{"StatsAudit", testStatsAudit},
	{"StatsHosts", testStatsHosts},
	{"StatsSessions", testStatsSessions},
	{"StatsMails", testStatsMails},
}

// testStatsAudit: histograms and tallies add up Count over the records in
// [Since, Until) of the site's hosts, and nothing else.
func testStatsAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	h0 := base.Truncate(time.Hour)
	const wiki = "wiki.example.org"
	ev := func(d time.Duration, host, outcome, reason, ip string, count int64) store.AuditEvent {
		return store.AuditEvent{Time: h0.Add(d), Kind: "invite", Outcome: outcome, Reason: reason, Host: host, ClientIP: ip, Count: count}
	}
	events := []store.AuditEvent{
		ev(10*time.Minute, wiki, store.OutcomeAccepted, "", "192.0.2.1", 0),
		ev(20*time.Minute, wiki+":8443", store.OutcomeRefused, "wrong_code", "203.0.113.5", 5),
		ev(25*time.Minute, "WIKI.Example.org", store.OutcomeRefused, "throttled", "203.0.113.5", 1),
		ev(70*time.Minute, wiki, store.OutcomeRefused, "wrong_code", "198.51.100.9", 2),
		ev(75*time.Minute, wiki, store.OutcomeRefused, "expired", "198.51.100.2", 2),
		ev(80*time.Minute, wiki, store.OutcomeAccepted, "", "192.0.2.1", 1),
		ev(2*time.Hour+59*time.Minute, wiki, store.OutcomeAccepted, "", "192.0.2.1", 3),
		// Out of range: the end is exclusive, the start inclusive.
		ev(3*time.Hour, wiki, store.OutcomeRefused, "wrong_code", "203.0.113.99", 50),
		ev(-time.Nanosecond, wiki, store.OutcomeRefused, "wrong_code", "203.0.113.98", 50),
		// Other sites, and hosts that only look like the site's.
		ev(30*time.Minute, "other.example.org", store.OutcomeRefused, "wrong_code", "203.0.113.97", 100),
		ev(30*time.Minute, "wiki.example.org.evil.test", store.OutcomeRefused, "wrong_code", "203.0.113.96", 100),
		ev(30*time.Minute, "xwiki.example.org", store.OutcomeRefused, "wrong_code", "203.0.113.95", 100),
		ev(30*time.Minute, "wiki_example.org", store.OutcomeRefused, "wrong_code", "203.0.113.94", 100),
	}
	if err := s.WriteAudit(ctx, events); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	q := store.StatsQuery{Hosts: []string{wiki}, Since: h0, Until: h0.Add(3 * time.Hour), Step: time.Hour}
	got, err := s.AuditHistogram(ctx, q)
	if err != nil {
		t.Fatalf("AuditHistogram: %v", err)
	}
	want := []store.AuditBucket{
		bucket(h0, store.OutcomeAccepted, 1), bucket(h0, store.OutcomeRefused, 6),
		bucket(h0.Add(time.Hour), store.OutcomeAccepted, 1), bucket(h0.Add(time.Hour), store.OutcomeRefused, 4),
		bucket(h0.Add(2*time.Hour), store.OutcomeAccepted, 3),
	}
	if !equalBuckets(got, want) {
		t.Errorf("AuditHistogram(%+v) =\n%v\nwant\n%v", q, got, want)
	}
	// Buckets start at Since, whatever its alignment.
	q2 := q
	q2.Since, q2.Step = h0.Add(30*time.Minute), 2*time.Hour
	got, err = s.AuditHistogram(ctx, q2)
	if err != nil {
		t.Fatal(err)
	}
	want = []store.AuditBucket{
		bucket(h0.Add(30*time.Minute), store.OutcomeAccepted, 1), bucket(h0.Add(30*time.Minute), store.OutcomeRefused, 4),
		bucket(h0.Add(150*time.Minute), store.OutcomeAccepted, 3),
	}
	if !equalBuckets(got, want) {
		t.Errorf("AuditHistogram(%+v) = %v, want %v", q2, got, want)
	}
	q2.Outcome = store.OutcomeRefused
	if got, err = s.AuditHistogram(ctx, q2); err != nil || !equalBuckets(got, want[1:2]) {
		t.Errorf("AuditHistogram(%+v) = %v, %v; want %v", q2, got, err, want[1:2])
	}
	if _, err := s.AuditHistogram(ctx, store.StatsQuery{Since: h0, Until: h0.Add(time.Hour)}); err == nil {
		t.Error("AuditHistogram without a step: no error")
	}

	refused := q
	refused.Outcome = store.OutcomeRefused
	for _, tc := range []struct {
		by    string
		limit int
		want  []store.Tally
	}{
		// Equal counts by value.
		{store.TallyClientIP, 10, []store.Tally{tally("203.0.113.5", 6), tally("198.51.100.2", 2), tally("198.51.100.9", 2)}},
		{store.TallyClientIP, 1, []store.Tally{tally("203.0.113.5", 6)}},
		{store.TallyReason, 10, []store.Tally{tally("wrong_code", 7), tally("expired", 2), tally("throttled", 1)}},
		{store.TallyKind, 10, []store.Tally{tally("invite", 10)}},
		{store.TallyReason, 0, nil},
	} {
		got, err := s.AuditTop(ctx, refused, tc.by, tc.limit)
		if err != nil {
			t.Fatalf("AuditTop(%s, %d): %v", tc.by, tc.limit, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("AuditTop(%s, %d) = %v, want %v", tc.by, tc.limit, got, tc.want)
		}
	}
	if _, err := s.AuditTop(ctx, refused, "user_agent; DROP TABLE audit", 10); err == nil {
		t.Error("AuditTop by an unknown field: no error")
	}
	// No hosts: every host.
	all := store.StatsQuery{Since: h0, Until: h0.Add(3 * time.Hour), Outcome: store.OutcomeRefused}
	if got, err := s.AuditTop(ctx, all, store.TallyReason, 1); err != nil || !slices.Equal(got, []store.Tally{tally("wrong_code", 407)}) {
		t.Errorf("AuditTop over every host = %v, %v; want wrong_code 407", got, err)
	}
	// Nothing in range.
	none := q
	none.Since, none.Until = h0.Add(-48*time.Hour), h0.Add(-24*time.Hour)
	if got, err := s.AuditHistogram(ctx, none); err != nil || len(got) != 0 {
		t.Errorf("AuditHistogram of an empty range = %v, %v", got, err)
	}
	if got, err := s.AuditTop(ctx, none, store.TallyClientIP, 5); err != nil || len(got) != 0 {
		t.Errorf("AuditTop of an empty range = %v, %v", got, err)
	}
}

// testStatsHosts: a site's host matches with any port and case; a wildcard
// host matches one label; an IPv6 host matches in brackets.
func testStatsHosts(t *testing.T, s store.Store) {
	ctx := t.Context()
	hosts := []string{"a.example", "b.example", "*.shop.example", "2001:db8::1", "x%y"}
	recorded := map[string]bool{
		"a.example": true, "A.EXAMPLE:80": true, "b.example:8080": true,
		"one.shop.example": true, "One.Shop.Example:443": true, "[2001:db8::1]:8443": true, "[2001:db8::1]": true,
		"x%y":       true,
		"c.example": false, "a.example.c": false, "aa.example": false, "a-example": false, "shop.example": false, ".shop.example": false,
		"two.one.shop.example": false, "two.one.shop.example:443": false, "[2001:db8::12]:80": false, "2001:db8::1": false,
		"xzy": false, "x%yz": false, "": false,
	}
	var events []store.AuditEvent
	for h := range recorded {
		events = append(events, store.AuditEvent{Time: at(0), Kind: "link", Outcome: store.OutcomeRefused, Reason: h, Host: h})
	}
	if err := s.WriteAudit(ctx, events); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	got, err := s.AuditTop(ctx, store.StatsQuery{Hosts: hosts, Since: at(0), Until: at(time.Second)}, store.TallyReason, 100)
	if err != nil {
		t.Fatalf("AuditTop: %v", err)
	}
	var matched []string
	for _, tl := range got {
		matched = append(matched, tl.Value)
	}
	var want []string
	for h, ok := range recorded {
		if ok {
			want = append(want, h)
		}
	}
	slices.Sort(matched)
	slices.Sort(want)
	if !slices.Equal(matched, want) {
		t.Errorf("records of %q: hosts %q, want %q", hosts, matched, want)
	}
}

// testStatsSessions: live sessions of one site, as Sessions' ActiveOnly
// counts them, optionally only those seen recently.
func testStatsSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "count@example.org")
	mk := func(id, site string, created time.Time) *store.Session {
		ss := newSession(u, id, created)
		ss.Site = site
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatalf("CreateSession(%s): %v", id, err)
		}
		return ss
	}
	mk("live", "a", at(0))
	mk("seen", "a", at(0))
	mk("revoked", "a", at(0))
	mk("expired", "a", at(-25*time.Hour))
	mk("other", "b", at(0))
	if err := s.RevokeSession(ctx, "revoked", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSession(ctx, "seen", at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	now := at(3 * time.Hour)
	for _, tc := range []struct {
		site string
		seen time.Time
		want int
	}{
		{"a", time.Time{}, 2},
		{"a", at(time.Hour), 1},
		{"a", at(2 * time.Hour), 1},
		{"a", at(2*time.Hour + time.Microsecond), 0},
		{"b", time.Time{}, 1},
		{"c", time.Time{}, 0},
	} {
		if n, err := s.CountSessions(ctx, tc.site, now, tc.seen); err != nil || n != tc.want {
			t.Errorf("CountSessions(%q, seen since %v) = %d, %v; want %d", tc.site, tc.seen.Sub(base), n, err, tc.want)
		}
	}
	if n, err := s.CountSessions(ctx, "a", at(25*time.Hour), time.Time{}); err != nil || n != 0 {
		t.Errorf("CountSessions after every session expired = %d, %v", n, err)
	}
}

// testStatsMails: one site's mails, counted by state and listed newest
// first without bodies.
func testStatsMails(t *testing.T, s store.Store) {
	ctx := t.Context()
	mail := func(site, to string, created time.Time) *store.Mail {
		m := newMail(to, created)
		m.Site = site
		return m
	}
	failed := mustEnqueue(t, s, mail("a", "failed@example.com", at(0)))
	c := mustClaimMail(t, s, at(0), at(time.Minute), 1)
	if len(c) != 1 || c[0].ID != failed.ID {
		t.Fatalf("claimed %v, want mail %d", mailIDs(c), failed.ID)
	}
	if err := s.MarkMailFailed(ctx, failed.ID, c[0].LeaseUntil, at(0), "550 no", time.Time{}); err != nil {
		t.Fatal(err)
	}
	sent := mustEnqueue(t, s, mail("a", "sent@example.com", at(time.Minute)))
	if c = mustClaimMail(t, s, at(time.Minute), at(2*time.Minute), 1); len(c) != 1 || c[0].ID != sent.ID {
		t.Fatalf("claimed %v, want mail %d", mailIDs(c), sent.ID)
	}
	if err := s.MarkMailSent(ctx, sent.ID, c[0].LeaseUntil, at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	queued := mustEnqueue(t, s, mail("a", "queued@example.com", at(2*time.Minute)))
	other := mustEnqueue(t, s, mail("b", "other@example.com", at(3*time.Minute)))
	sending := mail("a", "sending@example.com", at(4*time.Minute))
	sending.LeaseUntil = at(5 * time.Minute)
	mustEnqueue(t, s, sending)

	counts, err := s.MailCounts(ctx, "a")
	if err != nil {
		t.Fatalf("MailCounts: %v", err)
	}
	if want := map[string]int{store.MailFailed: 1, store.MailSent: 1, store.MailQueued: 1, store.MailSending: 1}; !maps.Equal(counts, want) {
		t.Errorf("MailCounts(a) = %v, want %v", counts, want)
	}
	if counts, err := s.MailCounts(ctx, "nowhere"); err != nil || len(counts) != 0 {
		t.Errorf("MailCounts(nowhere) = %v, %v", counts, err)
	}
	ms, err := s.SiteMails(ctx, "a", 3)
	if err != nil {
		t.Fatalf("SiteMails: %v", err)
	}
	if ids := mailIDs(ms); !slices.Equal(ids, []int64{sending.ID, queued.ID, sent.ID}) {
		t.Errorf("SiteMails(a, 3) = %v, want %v", ids, []int64{sending.ID, queued.ID, sent.ID})
	}
	for _, m := range ms {
		if m.Text != "" || m.HTML != "" || m.Site != "a" || m.To == "" {
			t.Errorf("listed mail %d: site %q, to %q, bodies %q %q; want the envelope only", m.ID, m.Site, m.To, m.Text, m.HTML)
		}
	}
	if ms[0].State != store.MailSending || ms[0].Attempts != 1 || ms[2].State != store.MailSent {
		t.Errorf("listed states %q %q, attempts %d", ms[0].State, ms[2].State, ms[0].Attempts)
	}
	if ms, err := s.SiteMails(ctx, "b", 10); err != nil || !slices.Equal(mailIDs(ms), []int64{other.ID}) {
		t.Errorf("SiteMails(b) = %v, %v; want %d", mailIDs(ms), err, other.ID)
	}
	if ms, err := s.SiteMails(ctx, "a", 0); err != nil || len(ms) != 0 {
		t.Errorf("SiteMails(a, 0) = %v, %v", mailIDs(ms), err)
	}
}

func bucket(start time.Time, outcome string, n int64) store.AuditBucket {
	return store.AuditBucket{Start: start, Outcome: outcome, Count: n}
}

func tally(v string, n int64) store.Tally { return store.Tally{Value: v, Count: n} }

func equalBuckets(a, b []store.AuditBucket) bool {
	return slices.EqualFunc(a, b, func(x, y store.AuditBucket) bool {
		return x.Start.Equal(y.Start) && x.Outcome == y.Outcome && x.Count == y.Count
	})
}
