package storetest

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// testChanges checks the fan-out every gateway follows: each way of ending
// a session, changing a user's standing or revoking a link records a
// change, and nothing else does.
func testChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	start, err := s.LatestChange(ctx)
	if err != nil {
		t.Fatalf("LatestChange: %v", err)
	}
	u := mustCreateUser(t, s, "", "fan@example.org")
	a, b := newSession(u, "fan-a", at(0)), newSession(u, "fan-b", at(0))
	for _, sess := range []*store.Session{a, b} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TouchSession(ctx, a.ID, at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ChangesSince(ctx, start, 100); len(got) != 0 {
		t.Fatalf("creating a user without roles and creating and touching sessions recorded changes: %+v", got)
	}
	// A user created with roles: holding a role is a grant, and every grant
	// is a change of the user (see Roles), however it is made. Nothing can
	// have cached a user that did not exist, so the change costs nothing.
	seq := start
	withRoles := mustCreateUser(t, s, "", "fan-roles@example.org", "viewer", "editor")
	created, err := s.ChangesSince(ctx, seq, 100)
	if err != nil {
		t.Fatalf("ChangesSince: %v", err)
	}
	if len(created) == 0 {
		t.Errorf("creating a user with roles recorded nothing, want changes of user %d", withRoles.ID)
	}
	for _, c := range created {
		if c.Kind != store.ChangeUser || c.Subject != fmt.Sprint(withRoles.ID) || c.Seq <= seq {
			t.Errorf("creating user %d with roles recorded %+v after seq %d", withRoles.ID, c, seq)
		}
		seq = c.Seq
	}
	l1 := mustCreateLink(t, s, u, "fan-link-1", 0, at(0))
	l2 := mustCreateLink(t, s, u, "fan-link-2", 3, at(0))
	steps := []struct {
		do   func() error
		want string // kind:subject, sorted, comma-separated
	}{
		{func() error { return s.RevokeSession(ctx, a.ID, at(time.Hour)) }, "session:fan-a"},
		{func() error { return s.RevokeSession(ctx, a.ID, at(2*time.Hour)) }, ""}, // already revoked
		{func() error { return s.SetUserActive(ctx, u.ID, false) }, fmt.Sprintf("user:%d", u.ID)},
		{func() error { return s.SetUserActive(ctx, u.ID, false) }, ""}, // no change
		{func() error { return s.SetUserActive(ctx, u.ID, true) }, fmt.Sprintf("user:%d", u.ID)},
		{func() error { return s.RevokeLink(ctx, l1.JTI, at(3*time.Hour)) }, "link:fan-link-1"},
		{func() error { return s.RevokeLink(ctx, l1.JTI, at(4*time.Hour)) }, ""},       // already revoked
		{func() error { return s.RevokeLink(ctx, "never-used", at(3*time.Hour)) }, ""}, // a placeholder row: nothing cached it
		// The user's links_revoked_before and the one link still valid.
		{func() error { return s.RevokeUserLinks(ctx, u.ID, at(5*time.Hour)) }, fmt.Sprintf("link:%s,user:%d", l2.JTI, u.ID)},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := s.ChangesSince(ctx, seq, 100)
		if err != nil {
			t.Fatalf("step %d: ChangesSince: %v", i, err)
		}
		var names []string
		for _, c := range got {
			names = append(names, c.Kind+":"+c.Subject)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != st.want {
			t.Errorf("step %d recorded %+v, want %q", i, got, st.want)
		}
		for _, c := range got {
			if c.Seq <= seq || c.At.IsZero() {
				t.Errorf("step %d: change %+v after seq %d", i, c, seq)
			}
			seq = c.Seq
		}
	}
	if latest, err := s.LatestChange(ctx); err != nil || latest != seq {
		t.Errorf("LatestChange = %d, %v; want %d", latest, err, seq)
	}
	// Revoking an invite ends its sessions, each a change.
	inv := mustCreateInvite(t, s, "fan.example", "invitee@example.org", "FANOUT123", at(0))
	sess := newSession(u, "fan-inv", at(0))
	sess.Kind, sess.CredentialID = "invite", fmt.Sprint(inv.ID)
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeInvite(ctx, inv.ID, at(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ := s.ChangesSince(ctx, seq, 100)
	if len(got) != 1 || got[0].Subject != "fan-inv" {
		t.Errorf("revoking an invite recorded %+v, want its session", got)
	}
	// A limit and an order.
	if all, _ := s.ChangesSince(ctx, start, 2); len(all) != 2 || all[0].Seq >= all[1].Seq {
		t.Errorf("ChangesSince with limit 2 = %+v", all)
	}
	// Pruning by age.
	n, err := s.PruneChanges(ctx, time.Now().Add(time.Hour))
	if err != nil || n < 4 {
		t.Errorf("PruneChanges = %d, %v; want every change so far", n, err)
	}
	if rest, _ := s.ChangesSince(ctx, 0, 100); len(rest) != 0 {
		t.Errorf("after pruning: %+v", rest)
	}
}

// testAuditStatusUpdate: a batch can fill in the status of records written
// earlier (with a consumed credential) beside new records.
func testAuditStatusUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.WriteAudit(ctx, []store.AuditEvent{{Time: at(0), Kind: "link", CredentialID: "status-upd", Outcome: store.OutcomeAccepted}}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Audit(ctx, store.AuditFilter{CredentialID: "status-upd"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Audit = %+v, %v", evs, err)
	}
	id := evs[0].ID
	batch := []store.AuditEvent{
		{ID: id, Status: 204, Latency: 1500 * time.Microsecond, StatusUpdate: true},
		{Time: at(time.Second), Kind: "link", CredentialID: "status-upd", Outcome: store.OutcomeRefused, Reason: "used_up", Status: 410},
		{ID: id + 1000, Status: 500, StatusUpdate: true}, // no such record: skipped
	}
	if err := s.WriteAudit(ctx, batch); err != nil {
		t.Fatalf("WriteAudit with updates: %v", err)
	}
	evs, _ = s.Audit(ctx, store.AuditFilter{CredentialID: "status-upd"})
	if len(evs) != 2 {
		t.Fatalf("after the batch: %d records, want 2 (updates insert nothing)", len(evs))
	}
	for _, e := range evs {
		switch {
		case e.ID == id && (e.Status != 204 || e.Latency != 1500*time.Microsecond):
			t.Errorf("updated record %+v", e)
		case e.ID != id && (e.Status != 410 || e.Reason != "used_up"):
			t.Errorf("new record %+v", e)
		}
	}
}

// testAuditCountsLinkUse: records of an unlimited link's uses count on its
// row in the same batch.
func testAuditCountsLinkUse(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "", "counted@example.org")
	if err := s.CreateLink(ctx, &store.Link{JTI: "unlimited-1", Site: "a.example", UserID: u.ID, Target: "a.example/x", Mode: "request", MaxUses: 0, ExpiresAt: at(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var batch []store.AuditEvent
	for i := range 3 {
		batch = append(batch, store.AuditEvent{Time: at(time.Duration(i+1) * time.Minute), Kind: "link", CredentialID: "unlimited-1", UserID: u.ID, Outcome: store.OutcomeAccepted, Reason: "request", Status: 200, CountsLinkUse: true})
	}
	batch = append(batch, store.AuditEvent{Time: at(0), Kind: "link", CredentialID: "unlimited-1", Outcome: store.OutcomeRefused, Reason: "wrong_target"})
	if err := s.WriteAudit(ctx, batch); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	l, err := s.Link(ctx, "unlimited-1")
	if err != nil || l.Uses != 3 || !l.FirstUsedAt.Equal(at(time.Minute)) || !l.LastUsedAt.Equal(at(3*time.Minute)) {
		t.Errorf("link after 3 counted uses = %+v, %v", l, err)
	}
	if evs, _ := s.Audit(ctx, store.AuditFilter{CredentialID: "unlimited-1"}); len(evs) != 4 {
		t.Errorf("%d records, want 4", len(evs))
	}
	// A record the writer aggregated counts as many uses as it stands for.
	agg := store.AuditEvent{Time: at(4 * time.Minute), Kind: "link", CredentialID: "unlimited-1", UserID: u.ID, Outcome: store.OutcomeAccepted, Reason: "request", Status: 200, CountsLinkUse: true, Count: 7}
	if err := s.WriteAudit(ctx, []store.AuditEvent{agg}); err != nil {
		t.Fatalf("WriteAudit: %v", err)
	}
	if l, err := s.Link(ctx, "unlimited-1"); err != nil || l.Uses != 10 || !l.LastUsedAt.Equal(at(4*time.Minute)) {
		t.Errorf("link after an aggregated record of 7 uses = %+v, %v; want 10 uses", l, err)
	}
	evs, _ := s.Audit(ctx, store.AuditFilter{CredentialID: "unlimited-1", Outcome: store.OutcomeAccepted})
	var sum int64
	for _, e := range evs {
		sum += max(e.Count, 1)
	}
	if len(evs) != 4 || sum != 10 {
		t.Errorf("accepted records %d standing for %d uses, want 4 for 10", len(evs), sum)
	}
}
