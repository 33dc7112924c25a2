package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/metrics"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/web"
)

type attempt struct {
	kind, outcome, reason string
	status                int
	d                     time.Duration
}

type observer struct {
	mu       sync.Mutex
	attempts []attempt
	consumed []string
}

func (o *observer) Attempt(kind, outcome, reason string, status int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts = append(o.attempts, attempt{kind, outcome, reason, status, d})
}

func (o *observer) Consumed(kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.consumed = append(o.consumed, kind)
}

func (o *observer) take() ([]attempt, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, c := o.attempts, o.consumed
	o.attempts, o.consumed = nil, nil
	return a, c
}

// limitedCredential is a limited kind whose store records the use, as links
// and tickets do: the pipeline writes no audit record of its own for an
// accepted one, and a use is taken only when the upstream succeeds.
type limitedCredential struct{}

func (limitedCredential) Kind() string                     { return "limited" }
func (limitedCredential) ThrottleKey(*gate.Request) string { return "" }
func (limitedCredential) Present(rq *gate.Request) bool {
	return rq.R.URL.Query().Get("kind") == "limited"
}
func (limitedCredential) Use(rq *gate.Request) gate.Outcome {
	if rq.R.URL.Query().Get("password") != "right" {
		return gate.Outcome{Refused: &gate.Refusal{Status: http.StatusGone, Reason: "used_up"}}
	}
	rq.Ev.Outcome, rq.Ev.Reason = store.OutcomeAccepted, "claimed"
	return gate.Outcome{UserID: 7, Recorded: true, Consumed: func(status int) bool { return status < 400 }}
}

// Every audited request is observed once, as it ends, whatever its kind;
// the gateway's time leaves out the upstream's.
func TestPipelineObservesEveryAuditedRequest(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{Site: "default"}, nil, nil)
	pages, _ := web.New("")
	rec, obs := &recorder{}, &observer{}
	g := gate.New(gate.Config{}, gate.Deps{Sessions: m, Store: st, Audit: rec, Pages: pages,
		Extra: []gate.Credential{limitedCredential{}}, Metrics: obs})

	const upstreamTime = 80 * time.Millisecond
	serve := func(target string, upstreamStatus int) {
		t.Helper()
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil), gate.Env{ClientIP: "192.0.2.1"}, func(w http.ResponseWriter, r *http.Request) error {
			time.Sleep(upstreamTime)
			w.WriteHeader(upstreamStatus)
			return nil
		})
	}

	serve("/x?kind=limited&password=right", http.StatusOK)
	as, cs := obs.take()
	if len(as) != 1 || as[0] != (attempt{"limited", store.OutcomeAccepted, "claimed", http.StatusOK, as[0].d}) {
		t.Errorf("accepted limited: observed %+v", as)
	}
	if len(as) == 1 && (as[0].d < 0 || as[0].d >= upstreamTime/2) {
		t.Errorf("gateway time %v includes the upstream's %v", as[0].d, upstreamTime)
	}
	if len(cs) != 1 || cs[0] != "limited" {
		t.Errorf("consumed %v, want [limited]", cs)
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("the pipeline audited a use the store recorded: %d records", n)
	}

	// The upstream failed: the use was given back, so nothing was consumed.
	serve("/x?kind=limited&password=right", http.StatusBadGateway)
	if as, cs := obs.take(); len(as) != 1 || as[0].status != http.StatusBadGateway || len(cs) != 0 {
		t.Errorf("failed upstream: observed %+v, consumed %v", as, cs)
	}

	serve("/x?kind=limited&password=wrong", http.StatusOK)
	if as, cs := obs.take(); len(as) != 1 || as[0] != (attempt{"limited", store.OutcomeRefused, "used_up", http.StatusGone, as[0].d}) || len(cs) != 0 {
		t.Errorf("refused limited: observed %+v, consumed %v", as, cs)
	}

	// The session cookie: refused without one, like every kind.
	serve("/x", http.StatusOK)
	if as, _ := obs.take(); len(as) != 1 || as[0].kind != gate.KindSession || as[0].outcome != store.OutcomeRefused || as[0].reason != "missing" {
		t.Errorf("no cookie: observed %+v", as)
	}
	u := &store.User{Email: "m@example.com", Active: true}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	token, _, err := m.Start(context.Background(), u.ID, "test", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.AddCookie(&http.Cookie{Name: gate.DefaultCookieName, Value: token})
	g.ServeHTTP(w, r, gate.Env{ClientIP: "192.0.2.1"}, func(w http.ResponseWriter, r *http.Request) error {
		time.Sleep(upstreamTime)
		return nil
	})
	as, cs = obs.take()
	if len(as) != 1 || as[0].kind != gate.KindSession || as[0].outcome != store.OutcomeAccepted || as[0].status != http.StatusOK || len(cs) != 0 {
		t.Errorf("session: observed %+v, consumed %v", as, cs)
	}
	if len(as) == 1 && as[0].d >= upstreamTime/2 {
		t.Errorf("gateway time %v includes the upstream's %v", as[0].d, upstreamTime)
	}
	// Each observation matches one audit record the pipeline wrote.
	if n := len(rec.all()); n != 3 {
		t.Errorf("audit records = %d, want 3 (the limited refusal, no cookie, session)", n)
	}
}

// The session hot path with metrics on: compare its allocations with
// BenchmarkSessionHotPath's; metrics add none.
func BenchmarkSessionHotPathWithMetrics(b *testing.B) {
	raw, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "g.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	mx := metrics.New()
	st := mx.Store(raw)
	u := &store.User{Email: "b@example.com", Active: true}
	if err := st.CreateUser(context.Background(), u); err != nil {
		b.Fatal(err)
	}
	m := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{}, session.NewCache(0), nil)
	token, _, err := m.Start(context.Background(), u.ID, "test", "", "", "")
	if err != nil {
		b.Fatal(err)
	}
	pages, _ := web.New("")
	g := gate.New(gate.Config{}, gate.Deps{Sessions: m, Store: st, Audit: &nopRecorder{}, Pages: pages, Metrics: mx})
	next := func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(http.StatusOK); return nil }
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
	cookie := []string{"latchkey_session=" + token} // sent again each time: the gate removes it
	rw := &benchWriter{h: http.Header{}}
	v := vars{}
	b.ReportAllocs()
	for b.Loop() {
		r.Header["Cookie"] = cookie
		if err := g.ServeHTTP(rw, r, gate.Env{ClientIP: "127.0.0.1", Vars: v}, next); err != nil {
			b.Fatal(err)
		}
		if rw.code != http.StatusOK {
			b.Fatalf("status %d", rw.code)
		}
	}
}
