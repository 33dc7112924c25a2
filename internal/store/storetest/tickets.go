package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// newTicket is a valid ticket as the admin API creates it: a generated
// password, some data, and an expiry a day after created.
func newTicket(uuid, place, purpose string, created time.Time) *store.Ticket {
	return &store.Ticket{
		UUID:         uuid,
		Place:        place,
		Purpose:      purpose,
		PasswordHash: []byte("hash-of-" + uuid),
		PasswordKind: "keyed",
		CreatedAt:    created,
		ExpiresAt:    created.Add(24 * time.Hour),
		Data:         []byte(`{"room":"101","guests":2}`),
		State:        store.TicketValid,
	}
}

func mustCreateTicket(t *testing.T, s store.Store, uuid string, created time.Time) *store.Ticket {
	t.Helper()
	tk := newTicket(uuid, "hotel", "checkin", created)
	if err := s.CreateTicket(t.Context(), tk); err != nil {
		t.Fatalf("CreateTicket(%q): %v", uuid, err)
	}
	return tk
}

func mustTicket(t *testing.T, s store.Store, uuid string) *store.Ticket {
	t.Helper()
	tk, err := s.Ticket(t.Context(), uuid)
	if err != nil {
		t.Fatalf("Ticket(%q): %v", uuid, err)
	}
	return tk
}

// jsonEqual compares JSON documents by value, since a backend may keep
// JSON in a normalised form (spacing, key order).
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func diffTicket(got, want *store.Ticket) []string {
	var d []string
	check := func(name string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	check("UUID", got.UUID == want.UUID, got.UUID, want.UUID)
	check("Place", got.Place == want.Place, got.Place, want.Place)
	check("Purpose", got.Purpose == want.Purpose, got.Purpose, want.Purpose)
	check("PasswordHash", string(got.PasswordHash) == string(want.PasswordHash), got.PasswordHash, want.PasswordHash)
	check("PasswordKind", got.PasswordKind == want.PasswordKind, got.PasswordKind, want.PasswordKind)
	check("CreatedAt", equalTime(got.CreatedAt, want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("ExpiresAt", equalTime(got.ExpiresAt, want.ExpiresAt), got.ExpiresAt, want.ExpiresAt)
	check("UserID", got.UserID == want.UserID, got.UserID, want.UserID)
	check("Data", jsonEqual(got.Data, want.Data), string(got.Data), string(want.Data))
	check("State", got.State == want.State, got.State, want.State)
	check("LeaseUntil", equalTime(got.LeaseUntil, want.LeaseUntil), got.LeaseUntil, want.LeaseUntil)
	check("UsedAt", equalTime(got.UsedAt, want.UsedAt), got.UsedAt, want.UsedAt)
	check("UseIP", got.UseIP == want.UseIP, got.UseIP, want.UseIP)
	check("UseUserAgent", got.UseUserAgent == want.UseUserAgent, got.UseUserAgent, want.UseUserAgent)
	check("UseStatus", got.UseStatus == want.UseStatus, got.UseStatus, want.UseStatus)
	check("RevokedAt", equalTime(got.RevokedAt, want.RevokedAt), got.RevokedAt, want.RevokedAt)
	return d
}

func ticketUUIDs(ts []store.Ticket) []string {
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.UUID)
	}
	return ids
}

// ticketEvent is the audit record of a claim of ticket uuid at when, named
// after id.
func ticketEvent(uuid string, when time.Time, id string) *store.AuditEvent {
	return &store.AuditEvent{
		Time:         when,
		Kind:         "ticket",
		CredentialID: uuid,
		Outcome:      store.OutcomeAccepted,
		Reason:       "claimed " + id,
		Method:       "POST",
		Host:         "hotel.example.org",
		Path:         "/checkin",
		ClientIP:     "192.0.2.7",
		UserAgent:    "Firefox",
	}
}

// ticketAudit is the audit trail of one ticket, newest first.
func ticketAudit(t *testing.T, s store.Store, uuid string) []store.AuditEvent {
	t.Helper()
	events, err := s.Audit(t.Context(), store.AuditFilter{CredentialID: uuid, Kind: "ticket", Limit: 1 << 20})
	if err != nil {
		t.Fatalf("Audit(CredentialID %q): %v", uuid, err)
	}
	return events
}

// mustClaim claims uuid at when with a lease until lease and an audit
// record, which it returns as written back.
func mustClaim(t *testing.T, s store.Store, uuid string, when, lease time.Time, id string) *store.AuditEvent {
	t.Helper()
	ev := ticketEvent(uuid, when, id)
	if err := s.ClaimTicket(t.Context(), uuid, when, lease, ev); err != nil {
		t.Fatalf("ClaimTicket(%q) at %v: %v", uuid, when, err)
	}
	if ev.ID == 0 {
		t.Fatalf("ClaimTicket(%q) did not write back the audit ID", uuid)
	}
	return ev
}

func testTickets(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "hotel.example.org", "guest@example.org")

	tk := newTicket("t-1", "hotel", "checkin", at(0))
	tk.UserID = u.ID
	if err := s.CreateTicket(ctx, tk); err != nil {
		t.Fatalf("CreateTicket: %v", err)
	}
	if !tk.CreatedAt.Equal(at(0)) || tk.State != store.TicketValid {
		t.Errorf("CreateTicket changed given fields: CreatedAt %v, State %q", tk.CreatedAt, tk.State)
	}
	want := *tk
	if d := diffTicket(mustTicket(t, s, "t-1"), &want); d != nil {
		t.Errorf("Ticket differs: %v", d)
	}
	if _, err := s.Ticket(ctx, "no-such-ticket"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Ticket of unknown uuid: err = %v, want ErrNotFound", err)
	}

	// Defaults: CreatedAt now, State valid, Data {}; no expiry, no user.
	before := time.Now()
	v := newTicket("t-2", "hotel", "checkout", time.Time{})
	v.State, v.Data, v.ExpiresAt = "", nil, time.Time{}
	if err := s.CreateTicket(ctx, v); err != nil {
		t.Fatalf("CreateTicket with defaults: %v", err)
	}
	if v.CreatedAt.IsZero() || v.CreatedAt.Before(before.Add(-time.Second)) || v.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt defaulted to %v, want about now", v.CreatedAt)
	}
	if v.State != store.TicketValid {
		t.Errorf("State defaulted to %q, want %q", v.State, store.TicketValid)
	}
	got := mustTicket(t, s, "t-2")
	if got.CreatedAt.Sub(v.CreatedAt).Abs() > time.Microsecond {
		t.Errorf("stored CreatedAt %v, written back %v", got.CreatedAt, v.CreatedAt)
	}
	got.CreatedAt = v.CreatedAt
	wantV := *v
	wantV.Data = []byte("{}")
	if d := diffTicket(got, &wantV); d != nil {
		t.Errorf("Ticket(t-2) differs: %v", d)
	}
	// An empty (not nil) Data is {} as well.
	e := newTicket("t-empty", "spa", "entry", at(30*time.Second))
	e.Data = []byte{}
	if err := s.CreateTicket(ctx, e); err != nil {
		t.Fatalf("CreateTicket with empty data: %v", err)
	}
	if got := mustTicket(t, s, "t-empty"); !jsonEqual(got.Data, []byte("{}")) {
		t.Errorf("empty Data stored as %q, want {}", got.Data)
	}

	// A ticket can be created in any state, with all its fields.
	full := newTicket("t-used", "hotel", "checkin", at(time.Minute))
	full.State, full.UsedAt, full.UseIP, full.UseUserAgent, full.UseStatus = store.TicketUsed, at(2*time.Minute), "198.51.100.1", "curl/8", 201
	full.PasswordKind = "argon2id"
	if err := s.CreateTicket(ctx, full); err != nil {
		t.Fatalf("CreateTicket of a used ticket: %v", err)
	}
	if d := diffTicket(mustTicket(t, s, "t-used"), full); d != nil {
		t.Errorf("Ticket(t-used) differs: %v", d)
	}

	// Listing: newest first; by place, purpose and state; limited.
	c := mustCreateTicket(t, s, "t-3", at(2*time.Minute))
	d := newTicket("t-4", "spa", "entry", at(3*time.Minute))
	if err := s.CreateTicket(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    store.TicketFilter
		want []string
	}{
		{store.TicketFilter{}, []string{v.UUID, d.UUID, c.UUID, full.UUID, e.UUID, tk.UUID}},
		{store.TicketFilter{Place: "hotel"}, []string{v.UUID, c.UUID, full.UUID, tk.UUID}},
		{store.TicketFilter{Place: "hotel", Purpose: "checkin"}, []string{c.UUID, full.UUID, tk.UUID}},
		{store.TicketFilter{Purpose: "entry"}, []string{d.UUID, e.UUID}},
		{store.TicketFilter{Place: "hotel", Purpose: "checkin", State: store.TicketValid}, []string{c.UUID, tk.UUID}},
		{store.TicketFilter{State: store.TicketUsed}, []string{full.UUID}},
		{store.TicketFilter{Place: "hotel", Limit: 2}, []string{v.UUID, c.UUID}},
		{store.TicketFilter{Limit: 1}, []string{v.UUID}},
		{store.TicketFilter{Place: "Hotel"}, nil},
		{store.TicketFilter{State: store.TicketRevoked}, nil},
	} {
		got, err := s.Tickets(ctx, tc.f)
		if err != nil {
			t.Fatalf("Tickets(%+v): %v", tc.f, err)
		}
		if ids := ticketUUIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("Tickets(%+v) = %q, want %q", tc.f, ids, tc.want)
		}
	}
	// Listed tickets carry all their fields.
	all, err := s.Tickets(ctx, store.TicketFilter{Place: "hotel", Purpose: "checkin"})
	if err != nil || len(all) != 3 {
		t.Fatalf("Tickets: %v, %v", ticketUUIDs(all), err)
	}
	if d := diffTicket(&all[2], &want); d != nil {
		t.Errorf("listed ticket differs: %v", d)
	}

	if err := s.CreateTicket(ctx, newTicket("", "hotel", "checkin", at(0))); err == nil {
		t.Error("CreateTicket with an empty uuid succeeded")
	}
	nobody := newTicket("t-nobody", "hotel", "checkin", at(0))
	nobody.UserID = u.ID + 1000
	if err := s.CreateTicket(ctx, nobody); err == nil {
		t.Error("CreateTicket for an unknown user succeeded")
	}
	if _, err := s.Ticket(ctx, "t-nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed CreateTicket left a ticket: %v", err)
	}
}

func testTicketConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := mustCreateTicket(t, s, "t-1", at(0))
	dup := newTicket("t-1", "spa", "entry", at(time.Minute))
	dup.PasswordHash = []byte("other hash")
	if err := s.CreateTicket(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateTicket with a taken uuid: err = %v, want ErrConflict", err)
	}
	if d := diffTicket(mustTicket(t, s, "t-1"), first); d != nil {
		t.Errorf("a conflicting CreateTicket changed the ticket: %v", d)
	}
	all, err := s.Tickets(ctx, store.TicketFilter{})
	if err != nil {
		t.Fatalf("Tickets: %v", err)
	}
	if ids := ticketUUIDs(all); !slices.Equal(ids, []string{"t-1"}) {
		t.Errorf("after a conflict, Tickets = %q, want only t-1", ids)
	}
}

func testClaimTicket(t *testing.T, s store.Store) {
	ctx := t.Context()
	u := mustCreateUser(t, s, "hotel.example.org", "guest@example.org")
	tk := mustCreateTicket(t, s, "t-1", at(0))
	when, lease := at(time.Minute), at(2*time.Minute)

	ev := ticketEvent("t-1", when, "1")
	ev.UserID = u.ID
	if err := s.ClaimTicket(ctx, "t-1", when, lease, ev); err != nil {
		t.Fatalf("ClaimTicket: %v", err)
	}
	if ev.ID == 0 {
		t.Error("Audit.ID not written back")
	}
	want := *tk
	want.State, want.LeaseUntil = store.TicketInUse, lease
	if d := diffTicket(mustTicket(t, s, "t-1"), &want); d != nil {
		t.Errorf("claimed ticket differs: %v", d)
	}
	events := ticketAudit(t, s, "t-1")
	if len(events) != 1 {
		t.Fatalf("%d audit events for the ticket, want 1", len(events))
	}
	if !sameEvent(events[0], *ev) {
		t.Errorf("stored audit event:\n got %+v\nwant %+v", events[0], *ev)
	}

	// A zero audit Time is stored as the claim's time.
	mustCreateTicket(t, s, "t-2", at(0))
	ev = ticketEvent("t-2", time.Time{}, "2")
	if err := s.ClaimTicket(ctx, "t-2", when, lease, ev); err != nil {
		t.Fatalf("ClaimTicket: %v", err)
	}
	if ev.ID == 0 || !ev.Time.Equal(when) {
		t.Errorf("Audit written back as %+v, want an ID and Time %v", *ev, when)
	}
	if events := ticketAudit(t, s, "t-2"); len(events) != 1 || !events[0].Time.Equal(when) || events[0].ID != ev.ID {
		t.Errorf("audit events for t-2: %+v", events)
	}

	// Without an audit record.
	mustCreateTicket(t, s, "t-3", at(0))
	if err := s.ClaimTicket(ctx, "t-3", when, lease, nil); err != nil {
		t.Fatalf("ClaimTicket without audit: %v", err)
	}
	if got := mustTicket(t, s, "t-3"); got.State != store.TicketInUse || !got.LeaseUntil.Equal(lease) {
		t.Errorf("ticket claimed without audit: state %q, lease %v", got.State, got.LeaseUntil)
	}
	if c := countRows(t, s); c.audit != 2 {
		t.Errorf("%d audit events, want 2", c.audit)
	}

	// A ticket without expiry is claimable at any time.
	nx := newTicket("t-forever", "hotel", "checkin", at(0))
	nx.ExpiresAt = time.Time{}
	if err := s.CreateTicket(ctx, nx); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "t-forever", at(1000*time.Hour), at(1001*time.Hour), "3")
}

// refusedClaim claims uuid at when, which must fail with ErrConflict and
// write nothing.
func refusedClaim(t *testing.T, s store.Store, what, uuid string, when time.Time) {
	t.Helper()
	before := countRows(t, s)
	tkBefore, err := s.Ticket(t.Context(), uuid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Ticket: %v", err)
	}
	ev := ticketEvent(uuid, when, "refused")
	evBefore := *ev
	err = s.ClaimTicket(t.Context(), uuid, when, when.Add(time.Minute), ev)
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: ClaimTicket: err = %v, want ErrConflict", what, err)
	}
	if c := countRows(t, s); c != before {
		t.Errorf("%s: rows went from %+v to %+v", what, before, c)
	}
	if !sameEvent(*ev, evBefore) {
		t.Errorf("%s: a refused ClaimTicket changed the audit event to %+v", what, *ev)
	}
	tkAfter, err := s.Ticket(t.Context(), uuid)
	switch {
	case tkBefore == nil && !errors.Is(err, store.ErrNotFound):
		t.Errorf("%s: a refused claim left ticket %+v, %v", what, tkAfter, err)
	case tkBefore != nil && err != nil:
		t.Errorf("%s: Ticket: %v", what, err)
	case tkBefore != nil:
		if d := diffTicket(tkAfter, tkBefore); d != nil {
			t.Errorf("%s: ticket changed: %v", what, d)
		}
	}
}

// testClaimTicketLease: a claim holds the ticket until its lease lapses;
// then (a crashed request) another claim may take it over.
func testClaimTicketLease(t *testing.T, s store.Store) {
	tk := mustCreateTicket(t, s, "t-1", at(0))
	lease1 := at(2 * time.Minute)
	mustClaim(t, s, "t-1", at(time.Minute), lease1, "1")

	refusedClaim(t, s, "claim during a live lease", "t-1", at(time.Minute))
	refusedClaim(t, s, "claim just before the lease lapses", "t-1", lease1.Add(-time.Microsecond))

	// At the lease's end it has lapsed.
	lease2 := lease1.Add(time.Minute)
	ev := mustClaim(t, s, "t-1", lease1, lease2, "2")
	want := *tk
	want.State, want.LeaseUntil = store.TicketInUse, lease2
	if d := diffTicket(mustTicket(t, s, "t-1"), &want); d != nil {
		t.Errorf("ticket taken over differs: %v", d)
	}
	refusedClaim(t, s, "claim during the new lease", "t-1", lease2.Add(-time.Second))

	// Later still, with the second lease lapsed too.
	lease3 := lease2.Add(time.Hour)
	mustClaim(t, s, "t-1", lease2.Add(time.Minute), lease3, "3")
	if events := ticketAudit(t, s, "t-1"); len(events) != 3 || events[1].ID != ev.ID {
		t.Errorf("audit events for the ticket: %+v", events)
	}
}

func testClaimTicketRefused(t *testing.T, s store.Store) {
	ctx := t.Context()

	refusedClaim(t, s, "claim of an unknown ticket", "no-such-ticket", at(time.Minute))

	// Used.
	mustCreateTicket(t, s, "used", at(0))
	lease := at(2 * time.Minute)
	ev := mustClaim(t, s, "used", at(time.Minute), lease, "1")
	if err := s.FinishTicket(ctx, "used", lease, true, at(90*time.Second), "192.0.2.7", "Firefox", 200, ev.ID, time.Millisecond); err != nil {
		t.Fatalf("FinishTicket: %v", err)
	}
	refusedClaim(t, s, "claim of a used ticket", "used", at(3*time.Minute))
	refusedClaim(t, s, "claim of a used ticket after its lease", "used", at(time.Hour))

	// Revoked, when valid and when in use.
	mustCreateTicket(t, s, "revoked", at(0))
	if err := s.RevokeTicket(ctx, "revoked", at(time.Minute)); err != nil {
		t.Fatalf("RevokeTicket: %v", err)
	}
	refusedClaim(t, s, "claim of a revoked ticket", "revoked", at(2*time.Minute))
	mustCreateTicket(t, s, "revoked-in-use", at(0))
	mustClaim(t, s, "revoked-in-use", at(time.Minute), lease, "2")
	if err := s.RevokeTicket(ctx, "revoked-in-use", at(90*time.Second)); err != nil {
		t.Fatalf("RevokeTicket: %v", err)
	}
	refusedClaim(t, s, "claim of a ticket revoked in use, after the lease", "revoked-in-use", at(time.Hour))

	// Expired: at its expiry and after, whether or not marked expired.
	exp := mustCreateTicket(t, s, "expiring", at(0))
	refusedClaim(t, s, "claim at the expiry", "expiring", exp.ExpiresAt)
	refusedClaim(t, s, "claim after the expiry", "expiring", exp.ExpiresAt.Add(time.Hour))
	mustClaim(t, s, "expiring", exp.ExpiresAt.Add(-time.Microsecond), exp.ExpiresAt.Add(time.Minute), "3")

	mustCreateTicket(t, s, "expired", at(0))
	if n, err := s.ExpireTickets(ctx, at(48*time.Hour)); err != nil || n != 1 {
		t.Fatalf("ExpireTickets = %d, %v; want 1", n, err)
	}
	refusedClaim(t, s, "claim of a ticket marked expired", "expired", at(time.Minute))

	// In use, with a lapsed lease, past its expiry: not taken over.
	mustCreateTicket(t, s, "in-use-expired", at(0))
	mustClaim(t, s, "in-use-expired", at(time.Minute), lease, "4")
	refusedClaim(t, s, "takeover of a lapsed claim past the expiry", "in-use-expired", at(25*time.Hour))

	if c := countRows(t, s); c.audit != 4 {
		t.Errorf("%d audit events after refusals, want 4", c.audit)
	}
}

func testClaimTicketConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateTicket(t, s, "t-1", at(0))
	const n = 50
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		winners   []int
		conflicts int
	)
	for i := range n {
		wg.Go(func() {
			when := at(time.Minute + time.Duration(i)*time.Millisecond)
			ev := ticketEvent("t-1", when, strconv.Itoa(i))
			err := s.ClaimTicket(ctx, "t-1", when, when.Add(time.Minute), ev)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, i)
				if ev.ID == 0 {
					t.Errorf("claim %d won without an audit ID", i)
				}
			case errors.Is(err, store.ErrConflict):
				conflicts++
				if ev.ID != 0 {
					t.Errorf("refused claim %d got audit ID %d", i, ev.ID)
				}
			default:
				t.Errorf("ClaimTicket %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 || conflicts != n-1 {
		t.Fatalf("%d claims won (%v) and %d conflicted, want 1 and %d", len(winners), winners, conflicts, n-1)
	}
	w := winners[0]
	wantLease := at(time.Minute + time.Duration(w)*time.Millisecond).Add(time.Minute)
	if got := mustTicket(t, s, "t-1"); got.State != store.TicketInUse || !got.LeaseUntil.Equal(wantLease) {
		t.Errorf("ticket is %q with lease %v, want in_use with the winner's lease %v", got.State, got.LeaseUntil, wantLease)
	}
	events := ticketAudit(t, s, "t-1")
	if len(events) != 1 || events[0].Reason != "claimed "+strconv.Itoa(w) {
		t.Errorf("audit events for the ticket: %+v, want the winner's only", events)
	}
	if c := countRows(t, s); c.audit != 1 {
		t.Errorf("%d audit events in all, want 1", c.audit)
	}
}

func testFinishTicketStamp(t *testing.T, s store.Store) {
	ctx := t.Context()
	tk := mustCreateTicket(t, s, "t-1", at(0))
	other := mustCreateTicket(t, s, "t-2", at(0))
	lease := at(2 * time.Minute)
	ev := mustClaim(t, s, "t-1", at(time.Minute), lease, "1")
	otherEv := mustClaim(t, s, "t-2", at(time.Minute), lease, "2")

	done := at(70 * time.Second)
	if err := s.FinishTicket(ctx, "t-1", lease, true, done, "198.51.100.9", "Safari/17", 201, ev.ID, 1500*time.Microsecond); err != nil {
		t.Fatalf("FinishTicket: %v", err)
	}
	want := *tk
	want.State, want.UsedAt, want.UseIP, want.UseUserAgent, want.UseStatus = store.TicketUsed, done, "198.51.100.9", "Safari/17", 201
	if d := diffTicket(mustTicket(t, s, "t-1"), &want); d != nil {
		t.Errorf("stamped ticket differs: %v", d)
	}
	events := ticketAudit(t, s, "t-1")
	if len(events) != 1 {
		t.Fatalf("%d audit events for the ticket, want 1", len(events))
	}
	wantEv := *ev
	wantEv.Status, wantEv.Latency = 201, 1500*time.Microsecond
	if !sameEvent(events[0], wantEv) {
		t.Errorf("claim's audit event after FinishTicket:\n got %+v\nwant %+v", events[0], wantEv)
	}

	// The other claim and its record are untouched.
	wantOther := *other
	wantOther.State, wantOther.LeaseUntil = store.TicketInUse, lease
	if d := diffTicket(mustTicket(t, s, "t-2"), &wantOther); d != nil {
		t.Errorf("other ticket changed: %v", d)
	}
	if e := ticketAudit(t, s, "t-2"); len(e) != 1 || !sameEvent(e[0], *otherEv) {
		t.Errorf("other ticket's audit changed: %+v", e)
	}

	// Finishing again, either way, is refused and changes nothing.
	for _, stamp := range []bool{true, false} {
		err := s.FinishTicket(ctx, "t-1", lease, stamp, at(time.Hour), "203.0.113.1", "x", 500, ev.ID, time.Second)
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("second FinishTicket(stamp %v): err = %v, want ErrConflict", stamp, err)
		}
	}
	if d := diffTicket(mustTicket(t, s, "t-1"), &want); d != nil {
		t.Errorf("ticket changed by a refused FinishTicket: %v", d)
	}
	if e := ticketAudit(t, s, "t-1"); len(e) != 1 || !sameEvent(e[0], wantEv) {
		t.Errorf("audit changed by a refused FinishTicket: %+v", e)
	}
	refusedClaim(t, s, "claim of a stamped ticket", "t-1", at(time.Hour))

	// Without an audit record to update.
	if err := s.FinishTicket(ctx, "t-2", lease, true, done, "", "", 204, 0, 0); err != nil {
		t.Fatalf("FinishTicket without audit ID: %v", err)
	}
	if got := mustTicket(t, s, "t-2"); got.State != store.TicketUsed || got.UseStatus != 204 {
		t.Errorf("ticket finished without audit: %+v", got)
	}
	if e := ticketAudit(t, s, "t-2"); len(e) != 1 || !sameEvent(e[0], *otherEv) {
		t.Errorf("FinishTicket without audit ID changed an audit record: %+v", e)
	}
}

func testFinishTicketGiveBack(t *testing.T, s store.Store) {
	ctx := t.Context()
	tk := mustCreateTicket(t, s, "t-1", at(0))
	lease := at(2 * time.Minute)
	ev := mustClaim(t, s, "t-1", at(time.Minute), lease, "1")

	if err := s.FinishTicket(ctx, "t-1", lease, false, at(70*time.Second), "198.51.100.9", "Safari/17", 502, ev.ID, 2*time.Second); err != nil {
		t.Fatalf("FinishTicket without stamp: %v", err)
	}
	if d := diffTicket(mustTicket(t, s, "t-1"), tk); d != nil {
		t.Errorf("ticket given back differs from the new ticket: %v", d)
	}
	wantEv := *ev
	wantEv.Status, wantEv.Latency = 502, 2*time.Second
	if e := ticketAudit(t, s, "t-1"); len(e) != 1 || !sameEvent(e[0], wantEv) {
		t.Errorf("audit after giving back: %+v, want %+v", e, wantEv)
	}
	if err := s.FinishTicket(ctx, "t-1", lease, false, at(80*time.Second), "", "", 502, ev.ID, 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishTicket of a ticket given back: err = %v, want ErrConflict", err)
	}

	// Claimable again at once, and this time used.
	lease2 := at(3 * time.Minute)
	ev2 := mustClaim(t, s, "t-1", at(90*time.Second), lease2, "2")
	if err := s.FinishTicket(ctx, "t-1", lease2, true, at(100*time.Second), "192.0.2.1", "Firefox", 200, ev2.ID, time.Millisecond); err != nil {
		t.Fatalf("FinishTicket: %v", err)
	}
	if got := mustTicket(t, s, "t-1"); got.State != store.TicketUsed || got.UseStatus != 200 || !got.UsedAt.Equal(at(100*time.Second)) {
		t.Errorf("ticket after the second claim: %+v", got)
	}
	e := ticketAudit(t, s, "t-1")
	if len(e) != 2 || e[0].ID != ev2.ID || e[0].Status != 200 || e[1].Status != 502 {
		t.Errorf("audit events after two claims: %+v", e)
	}
}

// testFinishTicketStale: a request whose lease lapsed and whose ticket was
// claimed again must not finish the new claim.
func testFinishTicketStale(t *testing.T, s store.Store) {
	ctx := t.Context()
	tk := mustCreateTicket(t, s, "t-1", at(0))
	lease1 := at(2 * time.Minute)
	ev1 := mustClaim(t, s, "t-1", at(time.Minute), lease1, "1")
	lease2 := at(4 * time.Minute)
	ev2 := mustClaim(t, s, "t-1", at(3*time.Minute), lease2, "2")

	claimed := *tk
	claimed.State, claimed.LeaseUntil = store.TicketInUse, lease2
	for _, stamp := range []bool{true, false} {
		err := s.FinishTicket(ctx, "t-1", lease1, stamp, at(3*time.Minute+time.Second), "192.0.2.1", "slow", 200, ev1.ID, time.Minute)
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("stale FinishTicket(stamp %v): err = %v, want ErrConflict", stamp, err)
		}
		if d := diffTicket(mustTicket(t, s, "t-1"), &claimed); d != nil {
			t.Errorf("stale FinishTicket(stamp %v) changed the new claim: %v", stamp, d)
		}
	}
	// Nothing else was written: both audit records are as claimed.
	if e := ticketAudit(t, s, "t-1"); len(e) != 2 || !sameEvent(e[0], *ev2) || !sameEvent(e[1], *ev1) {
		t.Errorf("audit after stale finishes: %+v", e)
	}
	// A lease that is close but not the same does not match either.
	if err := s.FinishTicket(ctx, "t-1", lease2.Add(time.Microsecond), true, at(5*time.Minute), "", "", 200, ev2.ID, 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishTicket with a lease off by 1µs: err = %v, want ErrConflict", err)
	}

	// The new claim finishes, even after its own lease lapsed, since nobody
	// took it over.
	if err := s.FinishTicket(ctx, "t-1", lease2, true, at(5*time.Minute), "192.0.2.2", "fast", 200, ev2.ID, time.Second); err != nil {
		t.Fatalf("FinishTicket of the new claim: %v", err)
	}
	if got := mustTicket(t, s, "t-1"); got.State != store.TicketUsed || got.UseIP != "192.0.2.2" || !got.LeaseUntil.IsZero() {
		t.Errorf("ticket after the new claim finished: %+v", got)
	}

	// Neither a valid nor an unknown ticket can be finished.
	mustCreateTicket(t, s, "t-valid", at(0))
	if err := s.FinishTicket(ctx, "t-valid", time.Time{}, true, at(time.Minute), "", "", 200, 0, 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishTicket of an unclaimed ticket: err = %v, want ErrConflict", err)
	}
	if got := mustTicket(t, s, "t-valid"); got.State != store.TicketValid {
		t.Errorf("unclaimed ticket is %q after a refused finish", got.State)
	}
	if err := s.FinishTicket(ctx, "no-such-ticket", lease1, true, at(time.Minute), "", "", 200, 0, 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishTicket of an unknown ticket: err = %v, want ErrConflict", err)
	}
}

func testRevokeTicket(t *testing.T, s store.Store) {
	ctx := t.Context()

	valid := mustCreateTicket(t, s, "valid", at(0))
	if err := s.RevokeTicket(ctx, "valid", at(time.Hour)); err != nil {
		t.Fatalf("RevokeTicket of a valid ticket: %v", err)
	}
	want := *valid
	want.State, want.RevokedAt = store.TicketRevoked, at(time.Hour)
	if d := diffTicket(mustTicket(t, s, "valid"), &want); d != nil {
		t.Errorf("revoked ticket differs: %v", d)
	}
	// Again: refused, and the first time is kept.
	if err := s.RevokeTicket(ctx, "valid", at(2*time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second RevokeTicket: err = %v, want ErrConflict", err)
	}
	if d := diffTicket(mustTicket(t, s, "valid"), &want); d != nil {
		t.Errorf("after a second revocation, ticket differs: %v", d)
	}

	// In use: revoked, the lease dropped, and the claim cannot finish.
	inUse := mustCreateTicket(t, s, "in-use", at(0))
	lease := at(2 * time.Minute)
	ev := mustClaim(t, s, "in-use", at(time.Minute), lease, "1")
	if err := s.RevokeTicket(ctx, "in-use", at(90*time.Second)); err != nil {
		t.Fatalf("RevokeTicket of a ticket in use: %v", err)
	}
	want = *inUse
	want.State, want.RevokedAt = store.TicketRevoked, at(90*time.Second)
	if d := diffTicket(mustTicket(t, s, "in-use"), &want); d != nil {
		t.Errorf("ticket revoked in use differs: %v", d)
	}
	if err := s.FinishTicket(ctx, "in-use", lease, true, at(100*time.Second), "", "", 200, ev.ID, 0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishTicket of a ticket revoked in use: err = %v, want ErrConflict", err)
	}
	if d := diffTicket(mustTicket(t, s, "in-use"), &want); d != nil {
		t.Errorf("a refused finish changed the revoked ticket: %v", d)
	}

	// Used and expired: refused, unchanged.
	used := mustCreateTicket(t, s, "used", at(0))
	ev = mustClaim(t, s, "used", at(time.Minute), lease, "2")
	if err := s.FinishTicket(ctx, "used", lease, true, at(70*time.Second), "192.0.2.1", "Firefox", 200, ev.ID, 0); err != nil {
		t.Fatal(err)
	}
	used = mustTicket(t, s, "used")
	expired := newTicket("expired", "hotel", "checkin", at(0))
	expired.ExpiresAt = at(time.Minute)
	if err := s.CreateTicket(ctx, expired); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExpireTickets(ctx, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	expired = mustTicket(t, s, "expired")
	if expired.State != store.TicketExpired {
		t.Fatalf("ticket not expired: %q", expired.State)
	}
	for _, tk := range []*store.Ticket{used, expired} {
		if err := s.RevokeTicket(ctx, tk.UUID, at(2*time.Hour)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("RevokeTicket of a %s ticket: err = %v, want ErrConflict", tk.State, err)
		}
		if d := diffTicket(mustTicket(t, s, tk.UUID), tk); d != nil {
			t.Errorf("refused RevokeTicket changed the %s ticket: %v", tk.State, d)
		}
	}

	if err := s.RevokeTicket(ctx, "no-such-ticket", at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeTicket of an unknown ticket: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Ticket(ctx, "no-such-ticket"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeTicket of an unknown ticket left a row: %v", err)
	}
}

func testExpireTickets(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(10 * time.Hour)
	mk := func(uuid string, expires time.Time) *store.Ticket {
		t.Helper()
		tk := newTicket(uuid, "hotel", "checkin", at(0))
		tk.ExpiresAt = expires
		if err := s.CreateTicket(ctx, tk); err != nil {
			t.Fatalf("CreateTicket(%q): %v", uuid, err)
		}
		return tk
	}
	mk("past", at(time.Hour))
	mk("at-now", now)
	mk("future", now.Add(time.Microsecond))
	mk("never", time.Time{})
	mk("in-use", at(time.Hour))
	mk("in-use-lapsed", at(time.Hour))
	mk("used", at(time.Hour))
	mk("revoked", at(time.Hour))

	// Claims made before the expiry; one lease still live at now.
	mustClaim(t, s, "in-use", at(30*time.Minute), now.Add(time.Minute), "1")
	mustClaim(t, s, "in-use-lapsed", at(30*time.Minute), at(31*time.Minute), "2")
	lease := at(31 * time.Minute)
	ev := mustClaim(t, s, "used", at(30*time.Minute), lease, "3")
	if err := s.FinishTicket(ctx, "used", lease, true, at(30*time.Minute+time.Second), "", "", 200, ev.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeTicket(ctx, "revoked", at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	before := map[string]*store.Ticket{}
	all, err := s.Tickets(ctx, store.TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		before[all[i].UUID] = &all[i]
	}

	n, err := s.ExpireTickets(ctx, now)
	if err != nil {
		t.Fatalf("ExpireTickets: %v", err)
	}
	if n != 2 {
		t.Errorf("ExpireTickets returned %d, want 2", n)
	}
	for uuid, tk := range before {
		want := *tk
		if uuid == "past" || uuid == "at-now" {
			want.State = store.TicketExpired
		}
		if d := diffTicket(mustTicket(t, s, uuid), &want); d != nil {
			t.Errorf("%s after ExpireTickets: %v", uuid, d)
		}
	}
	got, err := s.Tickets(ctx, store.TicketFilter{State: store.TicketExpired})
	if err != nil {
		t.Fatal(err)
	}
	if ids := ticketUUIDs(got); len(ids) != 2 || !slices.Contains(ids, "past") || !slices.Contains(ids, "at-now") {
		t.Errorf("expired tickets: %q, want past and at-now", ids)
	}

	// Nothing is left to expire at the same time; nothing is deleted.
	if n, err := s.ExpireTickets(ctx, now); err != nil || n != 0 {
		t.Errorf("second ExpireTickets = %d, %v; want 0", n, err)
	}
	if all, err := s.Tickets(ctx, store.TicketFilter{}); err != nil || len(all) != len(before) {
		t.Errorf("after ExpireTickets, %d tickets, %v; want %d", len(all), err, len(before))
	}

	// A claim given back after the expiry is valid again, and expired by
	// the next run.
	if err := s.FinishTicket(ctx, "in-use", now.Add(time.Minute), false, now, "", "", 502, 0, 0); err != nil {
		t.Fatalf("FinishTicket: %v", err)
	}
	if n, err := s.ExpireTickets(ctx, now); err != nil || n != 1 {
		t.Errorf("ExpireTickets after a give-back = %d, %v; want 1", n, err)
	}
	if got := mustTicket(t, s, "in-use"); got.State != store.TicketExpired {
		t.Errorf("ticket given back past its expiry is %q after ExpireTickets", got.State)
	}
}
