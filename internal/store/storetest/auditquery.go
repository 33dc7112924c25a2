package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// testAuditQuery: the filters `audit list` and `audit export` offer (reason,
// client IP, session, the hosts of a site with or without a port, a time
// window) and paging through any number of records with a cursor, in the
// listing's order, without a gap or a repeat, ties on time included.
func testAuditQuery(t *testing.T, s store.Store) {
	ctx := t.Context()
	var batch []store.AuditEvent
	for i := range 25 {
		e := store.AuditEvent{
			// Pairs of records share a time, so the cursor must break ties.
			Time: at(time.Duration(i/2) * time.Second), Kind: "session", Outcome: store.OutcomeRefused,
			Reason: "revoked", Host: "q.example", ClientIP: "198.51.100.1", SessionID: "sess-q", Method: "GET", Path: fmt.Sprintf("/%d", i),
		}
		switch i % 5 {
		case 1:
			e.Reason = "expired"
		case 2:
			e.ClientIP = "2001:db8::7"
		case 3:
			e.Host = "q.example:8443"
		case 4:
			e.Host, e.SessionID = "other.example", "sess-other"
		}
		batch = append(batch, e)
	}
	// A host that only starts like one of the site's.
	batch = append(batch, store.AuditEvent{Time: at(time.Hour), Kind: "session", Outcome: store.OutcomeRefused, Reason: "revoked", Host: "q.example.evil", ClientIP: "198.51.100.1"})
	if err := s.WriteAudit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	count := func(f store.AuditFilter) int {
		t.Helper()
		f.Limit = 1000
		evs, err := s.Audit(ctx, f)
		if err != nil {
			t.Fatalf("Audit(%+v): %v", f, err)
		}
		return len(evs)
	}
	for _, c := range []struct {
		name string
		f    store.AuditFilter
		want int
	}{
		{"reason", store.AuditFilter{Reason: "expired"}, 5},
		{"client IP", store.AuditFilter{ClientIP: "2001:db8::7"}, 5},
		{"session", store.AuditFilter{SessionID: "sess-other"}, 5},
		{"hosts, with or without a port", store.AuditFilter{Hosts: []string{"q.example"}}, 20},
		{"hosts, another", store.AuditFilter{Hosts: []string{"other.example", "none.example"}}, 5},
		{"a LIKE wildcard is a plain character", store.AuditFilter{Hosts: []string{"q_example"}}, 0},
		{"since and until", store.AuditFilter{Since: at(2 * time.Second), Until: at(4 * time.Second)}, 4},
		{"combined", store.AuditFilter{Reason: "revoked", Hosts: []string{"q.example"}, ClientIP: "198.51.100.1"}, 10},
	} {
		if got := count(c.f); got != c.want {
			t.Errorf("%s: %d records, want %d", c.name, got, c.want)
		}
	}

	// Paging 7 at a time through the site's 20 records.
	all, err := s.Audit(ctx, store.AuditFilter{Hosts: []string{"q.example"}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var paged []store.AuditEvent
	f := store.AuditFilter{Hosts: []string{"q.example"}, Limit: 7}
	for range 10 {
		page, err := s.Audit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if len(paged) != len(all) {
		t.Fatalf("paging gave %d records, the whole listing %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].ID != all[i].ID {
			t.Fatalf("record %d: paging gave id %d, the listing %d", i, paged[i].ID, all[i].ID)
		}
	}
	if got := count(store.AuditFilter{BeforeID: 1 << 40}); got != 0 {
		t.Errorf("a cursor naming no record listed %d records, want none", got)
	}
}
