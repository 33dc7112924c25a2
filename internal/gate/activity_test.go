package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/audit"
	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// keepSink keeps copies of the batches an audit.Writer writes.
type keepSink struct {
	mu  sync.Mutex
	evs []store.AuditEvent
}

func (s *keepSink) WriteAudit(_ context.Context, evs []store.AuditEvent) error {
	s.mu.Lock()
	s.evs = append(s.evs, slices.Clone(evs)...)
	s.mu.Unlock()
	return nil
}

func (s *keepSink) all() []store.AuditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.evs)
}

const (
	uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	uaPhone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)

// TestSessionActivityAudit: a session used 100 times from one client (IP
// and user agent) makes one record, of its first request; from a second
// user agent, one more. With every_request, each request is one.
func TestSessionActivityAudit(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want int
	}{{audit.SessionsActivity, 2}, {audit.SessionsEveryRequest, 200}} {
		t.Run(tc.mode, func(t *testing.T) {
			sink := &keepSink{}
			w := audit.NewWriter(sink, audit.Options{Sessions: tc.mode, FlushInterval: time.Hour}, nil, nil)
			defer w.Close(context.Background())
			g, token, s := newGate(t, w)
			next := func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(http.StatusNoContent); return nil }
			for _, ua := range []string{uaFirefox, uaPhone} {
				for i := range 100 {
					r := httptest.NewRequest(http.MethodGet, "/page", nil)
					r.Header.Set("Cookie", "latchkey_session="+token)
					r.Header.Set("User-Agent", ua)
					rw := httptest.NewRecorder()
					if err := g.ServeHTTP(rw, r, gate.Env{ClientIP: "192.0.2.7"}, next); err != nil || rw.Code != http.StatusNoContent {
						t.Fatalf("request %d: %d, %v", i, rw.Code, err)
					}
				}
			}
			if err := w.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := sink.all()
			if len(got) != tc.want {
				t.Fatalf("%d audit records for 200 requests from 2 clients, want %d", len(got), tc.want)
			}
			for _, e := range got {
				if e.Kind != gate.KindSession || e.Outcome != store.OutcomeAccepted || e.SessionID != s.ID || e.Status != http.StatusNoContent || e.ClientIP != "192.0.2.7" {
					t.Errorf("record %+v", e)
				}
				if tc.mode == audit.SessionsActivity && e.Reason != audit.ReasonNewClient {
					t.Errorf("activity record with reason %q, want %q", e.Reason, audit.ReasonNewClient)
				}
			}
			if tc.mode == audit.SessionsActivity && (got[0].UABrowser != "Firefox" || got[1].UABrowser != "Safari") {
				t.Errorf("activity records from %q and %q, want Firefox then Safari", got[0].UABrowser, got[1].UABrowser)
			}
		})
	}
}

// TestSessionRefusalsStillRecorded: the activity mode keeps accepted
// session requests to their activity; refusals are recorded (and a flood
// of them aggregated).
func TestSessionRefusalsStillRecorded(t *testing.T) {
	sink := &keepSink{}
	w := audit.NewWriter(sink, audit.Options{FlushInterval: time.Hour}, nil, nil)
	defer w.Close(context.Background())
	g, _, _ := newGate(t, w)
	for range 50 {
		r := httptest.NewRequest(http.MethodGet, "/page", nil)
		r.Header.Set("Cookie", "latchkey_session=forged")
		rw := httptest.NewRecorder()
		g.ServeHTTP(rw, r, gate.Env{ClientIP: "198.51.100.9"}, nil)
		if rw.Code != http.StatusUnauthorized {
			t.Fatalf("forged cookie: %d", rw.Code)
		}
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := sink.all()
	if len(got) != 1 || got[0].Outcome != store.OutcomeRefused || got[0].Count != 50 {
		t.Fatalf("records %+v; want one refusal counting 50", got)
	}
}

// BenchmarkSessionHotPathEveryRequest is BenchmarkSessionHotPath's
// with_sqlite_audit with a record for every request, as before the
// activity mode, for comparison.
func BenchmarkSessionHotPathEveryRequest(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "w.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	w := audit.NewWriter(st, audit.Options{Sessions: audit.SessionsEveryRequest}, audit.NewUAParser(1024), nil)
	benchHotPath(b, w)
	b.StopTimer()
	w.Close(context.Background())
	if d := w.Dropped(); d > 0 {
		b.ReportMetric(float64(d), "dropped")
	}
}
