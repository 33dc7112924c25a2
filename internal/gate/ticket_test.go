package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/ticket"
	"github.com/latchkeyhq/latchkey/internal/web"
)

type ticketRig struct {
	g   *gate.Gate
	st  store.Store
	h   *ticket.Hasher
	now time.Time
}

func newTicketRig(t *testing.T) *ticketRig {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secret := []byte("0123456789abcdef0123456789abcdef")
	h, err := ticket.NewHasher(secret, ticket.Argon2Params{Time: 1, MemoryKiB: 1024, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := web.New("")
	rig := &ticketRig{st: st, h: h, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return rig.now }
	rig.g = gate.New(gate.Config{Tickets: gate.TicketConfig{Pairs: []gate.TicketPair{{Place: "louvre", Purpose: "visit"}}, Lease: time.Minute}}, gate.Deps{
		Sessions: session.New(st, secret, session.Config{}, nil, clock), Store: st, Audit: &nopRecorder{}, Pages: pages,
		Tickets: h, Now: clock,
	})
	return rig
}

// mk creates a louvre/visit ticket (or place/purpose) expiring after ttl (0: never).
func (r *ticketRig) mk(t *testing.T, place string, ttl time.Duration) (string, string) {
	t.Helper()
	pw, _ := ticket.GeneratePassword()
	hash, _ := r.h.HashGenerated(pw)
	tk := &store.Ticket{UUID: ticket.NewUUID(), Place: place, Purpose: "visit", PasswordHash: hash, PasswordKind: ticket.KindKeyed, CreatedAt: r.now}
	if ttl > 0 {
		tk.ExpiresAt = r.now.Add(ttl)
	}
	if err := r.st.CreateTicket(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	return tk.UUID, pw
}

func (r *ticketRig) serve(t *testing.T, uuid, pw string, upstream int) int {
	t.Helper()
	q := url.Values{}
	if uuid != "" {
		q.Set("uuid", uuid)
		q.Set("password", pw)
	}
	req := httptest.NewRequest(http.MethodGet, "/louvre?"+q.Encode(), nil)
	rec := httptest.NewRecorder()
	err := r.g.ServeHTTP(rec, req, gate.Env{ClientIP: "192.0.2.1"}, func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Query().Get("password") != "" {
			t.Error("the password reached the upstream")
		}
		w.WriteHeader(upstream)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code
}

func (r *ticketRig) state(t *testing.T, uuid string) string {
	tk, err := r.st.Ticket(context.Background(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	return tk.State
}

func TestTicketStatesWithInjectedClock(t *testing.T) {
	r := newTicketRig(t)
	ctx := context.Background()

	id, pw := r.mk(t, "louvre", time.Hour)
	r.now = r.now.Add(time.Hour - time.Second)
	if got := r.serve(t, id, pw, 200); got != 200 || r.state(t, id) != store.TicketUsed {
		t.Fatalf("one second before expiry: %d, %s", got, r.state(t, id))
	}
	if got := r.serve(t, id, pw, 200); got != http.StatusGone {
		t.Errorf("used: %d, want 410", got)
	}

	id, pw = r.mk(t, "louvre", time.Hour)
	r.now = r.now.Add(time.Hour)
	if got := r.serve(t, id, pw, 200); got != http.StatusGone {
		t.Errorf("at expiry: %d, want 410", got)
	}
	if n, err := r.st.ExpireTickets(ctx, r.now); err != nil || n != 1 || r.state(t, id) != store.TicketExpired {
		t.Errorf("janitor: %d %v %s", n, err, r.state(t, id))
	}

	// An upstream failure gives the ticket back.
	id, pw = r.mk(t, "louvre", 0)
	if got := r.serve(t, id, pw, 500); got != 500 || r.state(t, id) != store.TicketValid {
		t.Fatalf("upstream 500: %d, %s", got, r.state(t, id))
	}
	// A claim left by a crash holds until its lease lapses.
	if err := r.st.ClaimTicket(ctx, id, r.now, r.now.Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(time.Minute - time.Second)
	if got := r.serve(t, id, pw, 200); got != http.StatusConflict {
		t.Errorf("under a live lease: %d, want 409", got)
	}
	r.now = r.now.Add(time.Second)
	if got := r.serve(t, id, pw, 200); got != 200 || r.state(t, id) != store.TicketUsed {
		t.Errorf("after the lease lapsed: %d, %s", got, r.state(t, id))
	}

	revokedID, revokedPW := r.mk(t, "louvre", 0)
	r.st.RevokeTicket(ctx, revokedID, r.now)
	orsayID, orsayPW := r.mk(t, "orsay", 0)
	goodID, _ := r.mk(t, "louvre", 0)
	refusals := []struct {
		name, uuid, pw string
		want           int
	}{
		{"missing", "", "", http.StatusUnauthorized},
		{"revoked", revokedID, revokedPW, http.StatusGone},
		{"wrong place", orsayID, orsayPW, http.StatusForbidden},
		{"bad password", goodID, "not-the-password", http.StatusForbidden},
		{"unknown uuid", ticket.NewUUID(), pw, http.StatusForbidden},
		{"malformed uuid", "louvre-1", pw, http.StatusForbidden},
	}
	for _, c := range refusals {
		if got := r.serve(t, c.uuid, c.pw, 200); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if r.state(t, goodID) != store.TicketValid {
		t.Error("a refused attempt changed the ticket")
	}
}
