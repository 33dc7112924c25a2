package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// auditCountTests are the audit count's part of the suite; Run runs them
// with the rest.
var auditCountTests = []struct {
	name string
	f    func(t *testing.T, s store.Store)
}{
	{"AuditCount", testAuditCount},
	{"AuditCountStatusUpdate", testAuditCountStatusUpdate},
}

// testAuditCount: a record stands for Count attempts. Zero and one are one
// (stored and read back as 1); a flood folded into one record keeps its
// count, up to the largest 32-bit count, which every backend keeps.
func testAuditCount(t *testing.T, s store.Store) {
	ctx := t.Context()
	counts := []int64{0, 1, 57, math.MaxInt32, -3}
	want := []int64{1, 1, 57, math.MaxInt32, 1}
	var events []store.AuditEvent
	for i, n := range counts {
		events = append(events, store.AuditEvent{
			Time: at(time.Duration(i) * time.Second), Kind: "ticket", Outcome: store.OutcomeRefused,
			Reason: "wrong_password", Host: "wiki.example.org", ClientIP: "198.51.100.7", Count: n,
		})
	}
	if err := s.WriteAudit(ctx, events); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	got, err := s.Audit(ctx, store.AuditFilter{Outcome: store.OutcomeRefused})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("Audit returned %d records, want %d", len(got), len(want))
	}
	var sum int64
	for i, e := range got {
		// Newest first.
		w := want[len(want)-1-i]
		if e.Count != w {
			t.Errorf("record at %v: Count %d, want %d", e.Time.Sub(base), e.Count, w)
		}
		sum += e.Count
	}
	if sum != 1+1+57+math.MaxInt32+1 {
		t.Errorf("counts add up to %d", sum)
	}
}

// testAuditCountStatusUpdate: filling in a status changes nothing else, and
// the records a store writes with a consumption count one.
func testAuditCountStatusUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.WriteAudit(ctx, []store.AuditEvent{{Time: at(0), Kind: "link", CredentialID: "count-upd", Outcome: store.OutcomeRefused, Reason: "used_up", Count: 9}}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Audit(ctx, store.AuditFilter{CredentialID: "count-upd"})
	if err != nil || len(evs) != 1 || evs[0].Count != 9 {
		t.Fatalf("Audit = %+v, %v; want one record counting 9", evs, err)
	}
	if err := s.WriteAudit(ctx, []store.AuditEvent{{ID: evs[0].ID, Status: 410, StatusUpdate: true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAuditStatus(ctx, evs[0].ID, 410, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	evs, _ = s.Audit(ctx, store.AuditFilter{CredentialID: "count-upd"})
	if len(evs) != 1 || evs[0].Count != 9 || evs[0].Status != 410 {
		t.Errorf("after the status updates: %+v, want one record counting 9 with status 410", evs)
	}

	u := mustCreateUser(t, s, "wiki.example.org", "count@example.org")
	ev := &store.AuditEvent{Kind: "link", CredentialID: "count-use", Outcome: store.OutcomeAccepted, Host: "wiki.example.org"}
	if _, err := s.UseLink(ctx, &store.LinkUse{
		JTI: "count-use", Site: "wiki.example.org", UserID: u.ID, Target: "wiki.example.org/x", Mode: "request",
		MaxUses: 1, ExpiresAt: at(time.Hour), At: at(time.Minute), Audit: ev,
	}); err != nil {
		t.Fatalf("UseLink: %v", err)
	}
	if ev.Count != 1 {
		t.Errorf("UseLink wrote back Count %d, want 1", ev.Count)
	}
	evs, _ = s.Audit(ctx, store.AuditFilter{CredentialID: "count-use"})
	if len(evs) != 1 || evs[0].Count != 1 {
		t.Errorf("the use's record: %+v, want one counting 1", evs)
	}
}
