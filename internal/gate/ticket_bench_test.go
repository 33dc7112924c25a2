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
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/ticket"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// BenchmarkTicketClaimAndStamp is the per-request cost of a one-shot ticket
// with a generated password, on a real SQLite store: read the credentials
// from the query, look the ticket up, check the password (one HMAC), claim
// it and write its audit record in one transaction, strip the credentials,
// set the ticket headers and placeholders, call next, and stamp it used (a
// second transaction). Every iteration uses its own ticket, created before
// the timer starts; the throttles are disabled (they count failures only
// anyway). For the password check alone see internal/ticket's
// BenchmarkCheckKeyed and BenchmarkCheckArgon2id.
func BenchmarkTicketClaimAndStamp(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "t.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h, err := ticket.NewHasher([]byte("0123456789abcdef0123456789abcdef"), ticket.DefaultArgon2Params)
	if err != nil {
		b.Fatal(err)
	}
	pages, err := web.New("")
	if err != nil {
		b.Fatal(err)
	}
	g := gate.New(gate.Config{Tickets: gate.TicketConfig{Pairs: []gate.TicketPair{{Place: "bench", Purpose: "run"}}}}, gate.Deps{
		Store: st, Audit: &nopRecorder{}, Pages: pages, Tickets: h,
	})

	// b.N tickets, made through the store as `tickets create` makes them.
	uuids := make([]string, b.N)
	queries := make([]string, b.N)
	now := time.Now()
	for i := range b.N {
		pw, err := ticket.GeneratePassword()
		if err != nil {
			b.Fatal(err)
		}
		hash, err := h.HashGenerated(pw)
		if err != nil {
			b.Fatal(err)
		}
		tk := &store.Ticket{UUID: ticket.NewUUID(), Place: "bench", Purpose: "run", PasswordHash: hash, PasswordKind: ticket.KindKeyed, CreatedAt: now}
		if err := st.CreateTicket(ctx, tk); err != nil {
			b.Fatal(err)
		}
		uuids[i] = tk.UUID
		queries[i] = url.Values{"uuid": {tk.UUID}, "password": {pw}}.Encode()
	}

	var want string
	mismatched := 0
	next := func(w http.ResponseWriter, r *http.Request) error {
		if r.Header.Get(gate.TicketIDHeader) != want || r.URL.RawQuery != "" {
			mismatched++
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	r := httptest.NewRequest(http.MethodGet, "/run", nil)
	r.RequestURI = "" // the query changes under it; the gate reads r.URL
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
	w := &codeWriter{h: http.Header{}}
	v := vars{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		want = uuids[i]
		r.URL.RawQuery = queries[i]
		w.code = 0
		clear(w.h)
		if err := g.ServeHTTP(w, r, gate.Env{ClientIP: "127.0.0.1", Vars: v}, next); err != nil {
			b.Fatal(err)
		}
		if w.code != http.StatusOK {
			b.Fatalf("ticket %d: status %d, want 200", i, w.code)
		}
	}
	b.StopTimer()
	if mismatched > 0 {
		b.Fatalf("%d of %d requests reached next without their X-Ticket-ID or with credentials in the query", mismatched, b.N)
	}
	for _, id := range uuids {
		tk, err := st.Ticket(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if tk.State != store.TicketUsed {
			b.Fatalf("ticket %s is %s after its request, want %s", id, tk.State, store.TicketUsed)
		}
	}
}

// codeWriter is a ResponseWriter that can be reset between requests (an
// httptest.ResponseRecorder keeps its first status).
type codeWriter struct {
	h    http.Header
	code int
}

func (w *codeWriter) Header() http.Header { return w.h }

func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *codeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
