package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

func testTicket(uuid string) *store.Ticket {
	return &store.Ticket{UUID: uuid, Place: "hotel", Purpose: "checkin", PasswordHash: []byte("h-" + uuid), PasswordKind: "keyed"}
}

// TestTicketColumns checks how a ticket is kept: unset times and a missing
// user as NULL, data as TEXT, the user as a foreign key, and the input
// CreateTicket refuses.
func TestTicketColumns(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	if err := s.CreateTicket(ctx, testTicket("t1")); err != nil {
		t.Fatal(err)
	}
	var nulls int
	var dataType, data, state string
	if err := s.r.QueryRow(`SELECT (expires_at IS NULL) + (user_id IS NULL) + (lease_until IS NULL) + (used_at IS NULL) + (revoked_at IS NULL),
		typeof(data), data, state FROM tickets WHERE uuid = 't1'`).Scan(&nulls, &dataType, &data, &state); err != nil {
		t.Fatal(err)
	}
	if nulls != 5 {
		t.Errorf("%d of 5 unset columns are NULL", nulls)
	}
	if dataType != "text" || data != "{}" || state != "valid" {
		t.Errorf("data stored as %s %q, state %q; want text {}, valid", dataType, data, state)
	}

	withData := testTicket("t2")
	withData.Data = []byte(` {"room": "101", "n": [1, 2]}`)
	if err := s.CreateTicket(ctx, withData); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRow(`SELECT typeof(data), json_extract(data, '$.room') FROM tickets WHERE uuid = 't2'`).Scan(&dataType, &data); err != nil {
		t.Fatal(err)
	}
	if dataType != "text" || data != "101" {
		t.Errorf("data stored as %s, $.room = %q; want text, 101", dataType, data)
	}
	if got, err := s.Ticket(ctx, "t2"); err != nil || string(got.Data) != string(withData.Data) {
		t.Errorf("Ticket(t2).Data = %q, %v; want %q as given", got.Data, err, withData.Data)
	}

	nobody := testTicket("t3")
	nobody.UserID = 99
	if err := s.CreateTicket(ctx, nobody); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateTicket for a missing user: %v, want ErrNotFound", err)
	}
	for name, mod := range map[string]func(*store.Ticket){
		"empty uuid":          func(tk *store.Ticket) { tk.UUID = "" },
		"no password hash":    func(tk *store.Ticket) { tk.PasswordHash = nil },
		"no password kind":    func(tk *store.Ticket) { tk.PasswordKind = "" },
		"data not JSON":       func(tk *store.Ticket) { tk.Data = []byte(`{"a":`) },
		"data not an object":  func(tk *store.Ticket) { tk.Data = []byte(`[1, 2]`) },
		"data a JSON string":  func(tk *store.Ticket) { tk.Data = []byte(`"{}"`) },
		"data with trailings": func(tk *store.Ticket) { tk.Data = []byte(`{} {}`) },
		"unknown state":       func(tk *store.Ticket) { tk.State = "pending" },
	} {
		tk := testTicket("bad")
		mod(tk)
		err := s.CreateTicket(ctx, tk)
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateTicket with %s: err = %v, want a plain error", name, err)
		}
	}
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM tickets`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d tickets, %v; want 2", n, err)
	}
}

// TestTicketLeaseExact checks that leases compare to the nanosecond, as
// they are stored, and that a claim must hold a lease that ends after it.
func TestTicketLeaseExact(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	if err := s.CreateTicket(ctx, testTicket("t1")); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for _, lease := range []time.Time{at, at.Add(-time.Nanosecond), {}} {
		err := s.ClaimTicket(ctx, "t1", at, lease, &store.AuditEvent{Kind: "ticket", CredentialID: "t1"})
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("ClaimTicket with lease %v at %v: err = %v, want a plain error", lease, at, err)
		}
	}
	if got, err := s.Ticket(ctx, "t1"); err != nil || got.State != store.TicketValid {
		t.Fatalf("after refused claims: %+v, %v", got, err)
	}

	lease := at.Add(time.Nanosecond)
	if err := s.ClaimTicket(ctx, "t1", at, lease, nil); err != nil {
		t.Fatalf("ClaimTicket with a 1ns lease: %v", err)
	}
	if got, err := s.Ticket(ctx, "t1"); err != nil || !got.LeaseUntil.Equal(lease) {
		t.Errorf("lease stored as %v, %v; want %v", got.LeaseUntil, err, lease)
	}
	for _, off := range []time.Time{lease.Add(time.Nanosecond), lease.Add(-time.Nanosecond), lease.Truncate(time.Microsecond)} {
		if err := s.FinishTicket(ctx, "t1", off, true, at, "", "", 200, 0, 0); !errors.Is(err, store.ErrConflict) {
			t.Errorf("FinishTicket with lease %v for %v: err = %v, want ErrConflict", off, lease, err)
		}
	}
	// In another time zone, the same instant.
	if err := s.FinishTicket(ctx, "t1", lease.In(time.FixedZone("X", 3600)), true, at, "", "", 200, 0, 0); err != nil {
		t.Errorf("FinishTicket with the exact lease: %v", err)
	}
}

// TestTicketTxRollback makes the audit write of a claim, and the audit
// update of a finish, fail, and checks that the ticket's change is rolled
// back with it: the two are one transaction.
func TestTicketTxRollback(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	if err := s.CreateTicket(ctx, testTicket("t1")); err != nil {
		t.Fatal(err)
	}
	at := time.Unix(0, 1000)
	lease := at.Add(time.Minute)

	if _, err := s.w.Exec(`CREATE TRIGGER no_audit_insert BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
		t.Fatal(err)
	}
	ev := &store.AuditEvent{Kind: "ticket", CredentialID: "t1"}
	err := s.ClaimTicket(ctx, "t1", at, lease, ev)
	if err == nil || errors.Is(err, store.ErrConflict) {
		t.Errorf("ClaimTicket with a failing audit insert: err = %v, want a plain error", err)
	}
	if ev.ID != 0 {
		t.Errorf("a failed claim wrote back audit ID %d", ev.ID)
	}
	if got, err := s.Ticket(ctx, "t1"); err != nil || got.State != store.TicketValid || !got.LeaseUntil.IsZero() {
		t.Errorf("after a failed claim: %+v, %v; want it valid", got, err)
	}
	if _, err := s.w.Exec(`DROP TRIGGER no_audit_insert`); err != nil {
		t.Fatal(err)
	}

	if err := s.ClaimTicket(ctx, "t1", at, lease, ev); err != nil {
		t.Fatalf("ClaimTicket: %v", err)
	}
	if _, err := s.w.Exec(`CREATE TRIGGER no_audit_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
		t.Fatal(err)
	}
	err = s.FinishTicket(ctx, "t1", lease, true, at, "192.0.2.1", "ua", 200, ev.ID, time.Millisecond)
	if err == nil || errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishTicket with a failing audit update: err = %v, want a plain error", err)
	}
	if got, err := s.Ticket(ctx, "t1"); err != nil || got.State != store.TicketInUse || !got.LeaseUntil.Equal(lease) || got.UseIP != "" {
		t.Errorf("after a failed finish: %+v, %v; want it still claimed", got, err)
	}
	if _, err := s.w.Exec(`DROP TRIGGER no_audit_update`); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishTicket(ctx, "t1", lease, true, at, "192.0.2.1", "ua", 200, ev.ID, time.Millisecond); err != nil {
		t.Fatalf("FinishTicket: %v", err)
	}
}

// TestFinishTicketMissingAudit: an audit ID that names no record does not
// stop the ticket from being stamped.
func TestFinishTicketMissingAudit(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	if err := s.CreateTicket(ctx, testTicket("t1")); err != nil {
		t.Fatal(err)
	}
	at := time.Unix(0, 1000)
	lease := at.Add(time.Minute)
	if err := s.ClaimTicket(ctx, "t1", at, lease, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishTicket(ctx, "t1", lease, true, at, "", "", 200, 12345, 0); err != nil {
		t.Fatalf("FinishTicket with an unknown audit ID: %v", err)
	}
	if got, err := s.Ticket(ctx, "t1"); err != nil || got.State != store.TicketUsed {
		t.Errorf("ticket = %+v, %v; want it used", got, err)
	}
}

// TestTicketQueriesUseIndexes checks the plans of the ticket statements
// that run over many rows.
func TestTicketQueriesUseIndexes(t *testing.T) {
	s := openTemp(t)
	for q, index := range map[string]string{
		`SELECT ` + ticketColumns + ` FROM tickets WHERE 1 AND place = ? AND purpose = ? ORDER BY created_at DESC, rowid DESC`: "tickets_place_purpose_created",
		`UPDATE tickets SET state = 'expired' WHERE state = 'valid' AND expires_at IS NOT NULL AND expires_at <= ?`:            "tickets_valid_expires",
		`SELECT ` + ticketColumns + ` FROM tickets WHERE 1 AND user_id = ?`:                                                    "tickets_user_id",
	} {
		n := strings.Count(q, "?")
		args := make([]any, n)
		for i := range args {
			args[i] = i
		}
		rows, err := s.r.Query(`EXPLAIN QUERY PLAN `+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan strings.Builder
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(detail + "\n")
		}
		rows.Close()
		if !strings.Contains(plan.String(), index) || strings.Contains(plan.String(), "TEMP B-TREE") {
			t.Errorf("plan of %s:\n%s\nwant it to use %s without sorting", q, plan.String(), index)
		}
	}
}

// TestClaimTicketTwoStores is two processes' worth of Stores claiming one
// ticket at once: SQLite's file lock, not the Go-side single writer, is
// what lets only one through.
func TestClaimTicketTwoStores(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	if err := stores[0].CreateTicket(ctx, testTicket("t1")); err != nil {
		t.Fatal(err)
	}
	at := time.Unix(0, 1000)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		wins, conflicts int
	)
	for i, s := range stores {
		for g := range 10 {
			wg.Go(func() {
				ev := &store.AuditEvent{Kind: "ticket", CredentialID: "t1", Reason: fmt.Sprint(i, g)}
				err := s.ClaimTicket(ctx, "t1", at, at.Add(time.Minute), ev)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("store %d: %v", i, err)
				}
			})
		}
	}
	wg.Wait()
	if wins != 1 || conflicts != 19 {
		t.Errorf("%d claims won and %d conflicted, want 1 and 19", wins, conflicts)
	}
	var n int
	if err := stores[1].r.QueryRow(`SELECT count(*) FROM audit WHERE credential_id = 't1'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d audit records, %v; want 1", n, err)
	}
}
