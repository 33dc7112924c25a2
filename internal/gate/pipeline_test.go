package gate_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/throttle"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// fakeCredential is a kind of credential the pipeline does not know: it is
// present when the query names it, and accepts the password "right".
type fakeCredential struct {
	kind     string
	uses     atomic.Int32
	finished atomic.Int32
	status   atomic.Int32 // the status Finish saw
	hold     chan struct{}
}

func (f *fakeCredential) Kind() string { return f.kind }
func (f *fakeCredential) Present(rq *gate.Request) bool {
	return rq.R.URL.Query().Get("kind") == f.kind
}
func (f *fakeCredential) ThrottleKey(rq *gate.Request) string { return rq.R.URL.Query().Get("id") }
func (f *fakeCredential) Use(rq *gate.Request) gate.Outcome {
	f.uses.Add(1)
	if f.hold != nil {
		<-f.hold
	}
	if rq.R.URL.Query().Get("password") != "right" {
		return gate.Outcome{Refused: &gate.Refusal{Status: http.StatusForbidden, Reason: "bad_password"}}
	}
	return gate.Outcome{UserID: 42, Header: http.Header{"X-Fake-Place": {"louvre"}}, Finish: func(status int, _ time.Duration) {
		f.finished.Add(1)
		f.status.Store(int32(status))
	}}
}

type recorder struct {
	mu  sync.Mutex
	evs []store.AuditEvent
}

func (r *recorder) Record(e store.AuditEvent)           { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }
func (r *recorder) Describe(*store.AuditEvent)          {}
func (r *recorder) SetStatus(int64, int, time.Duration) {}
func (r *recorder) all() []store.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.AuditEvent(nil), r.evs...)
}

type fakeRig struct {
	g      *gate.Gate
	kinds  []*fakeCredential
	rec    *recorder
	token  string // a live session cookie on the gate's site
	limits map[string]gate.Throttle
	st     store.Store
}

// newFakeRig builds a gate whose only credentials (besides the session
// cookie) are fakes, registered the way a new kind would be: one entry in
// Deps.Extra.
func newFakeRig(t *testing.T, limit int) *fakeRig {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &store.User{Email: "p@example.com", Active: true}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	m := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{Site: "default"}, nil, nil)
	token, _, err := m.Start(context.Background(), u.ID, "test", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := web.New("")
	rig := &fakeRig{rec: &recorder{}, token: token, limits: map[string]gate.Throttle{}, st: st}
	var extra []gate.Credential
	for _, k := range []string{"alpha", "beta"} {
		f := &fakeCredential{kind: k}
		rig.kinds = append(rig.kinds, f)
		extra = append(extra, f)
		rig.limits[k] = gate.Throttle{PerIP: throttle.New(limit, time.Minute), PerCredential: throttle.New(limit, time.Minute)}
	}
	rig.g = gate.New(gate.Config{}, gate.Deps{Sessions: m, Store: st, Audit: rig.rec, Pages: pages, Extra: extra, Throttles: rig.limits})
	return rig
}

type served struct {
	resp     *httptest.ResponseRecorder
	err      error
	upstream *http.Request // nil when nothing reached it
}

func (rig *fakeRig) serve(r *http.Request, env gate.Env) served {
	var s served
	s.resp = httptest.NewRecorder()
	if env.ClientIP == "" {
		env.ClientIP = "192.0.2.9"
	}
	s.err = rig.g.ServeHTTP(s.resp, r, env, func(w http.ResponseWriter, r *http.Request) error {
		s.upstream = r
		w.WriteHeader(http.StatusAccepted)
		return nil
	})
	return s
}

// Each guard holds for every kind, including kinds the pipeline has never
// heard of.
func TestPipelineGuardsApplyToEveryKind(t *testing.T) {
	for _, kind := range []string{"alpha", "beta"} {
		t.Run(kind, func(t *testing.T) {
			rig := newFakeRig(t, 3)
			f := rig.kinds[0]
			if kind == "beta" {
				f = rig.kinds[1]
			}
			q := "/x?kind=" + kind + "&id=t1&password="

			t.Run("identity comes from the credential only", func(t *testing.T) {
				r := httptest.NewRequest(http.MethodGet, q+"right", nil)
				r.Header["x_user_id"] = []string{"1"}
				r.Header.Set("X-Latchkey-Link-Data", "{}")
				r.Header.Set("Connection", "X-User-ID, keep-alive")
				r.AddCookie(&http.Cookie{Name: "latchkey_session", Value: rig.token})
				r.AddCookie(&http.Cookie{Name: "app", Value: "1"})
				s := rig.serve(r, gate.Env{})
				if s.upstream == nil {
					t.Fatalf("accepted credential did not reach the upstream: %d", s.resp.Code)
				}
				h := s.upstream.Header
				if h.Get("X-User-ID") != "42" || h.Get("X-Fake-Place") != "louvre" || h.Get("X-Latchkey-Link-Data") != "" || h["x_user_id"] != nil {
					t.Errorf("upstream headers %v", h)
				}
				if c := h.Get("Connection"); strings.Contains(strings.ToLower(c), "user") {
					t.Errorf("Connection still names an identity header: %q", c)
				}
				if c := h.Get("Cookie"); strings.Contains(c, "latchkey_session") || !strings.Contains(c, "app=1") {
					t.Errorf("upstream Cookie %q: want the app's cookie and not the gateway's", c)
				}
				if f.finished.Load() != 1 || f.status.Load() != http.StatusAccepted {
					t.Errorf("Finish ran %d times with %d", f.finished.Load(), f.status.Load())
				}
			})

			t.Run("credential responses are not cached or referred", func(t *testing.T) {
				for _, pw := range []string{"right", "wrong"} {
					s := rig.serve(httptest.NewRequest(http.MethodGet, q+pw, nil), gate.Env{})
					if s.resp.Header().Get("Cache-Control") != "no-store" || s.resp.Header().Get("Referrer-Policy") != "no-referrer" {
						t.Errorf("password %s: headers %v", pw, s.resp.Header())
					}
				}
			})

			t.Run("cross-site POST is refused before the credential is used", func(t *testing.T) {
				before := f.uses.Load()
				r := httptest.NewRequest(http.MethodPost, q+"right", nil)
				r.Header.Set("Sec-Fetch-Site", "cross-site")
				s := rig.serve(r, gate.Env{})
				if s.resp.Code != http.StatusForbidden || s.upstream != nil || f.uses.Load() != before {
					t.Errorf("cross-site POST: %d, upstream %v, used %d times", s.resp.Code, s.upstream != nil, f.uses.Load()-before)
				}
				// A server-to-server POST (no Origin, no Sec-Fetch-Site) is
				// not a browser's cross-site form.
				s = rig.serve(httptest.NewRequest(http.MethodPost, q+"right", nil), gate.Env{})
				if s.upstream == nil {
					t.Errorf("POST without browser headers refused: %d", s.resp.Code)
				}
			})

			t.Run("refusals go to handle_errors when there are error routes", func(t *testing.T) {
				s := rig.serve(httptest.NewRequest(http.MethodGet, q+"wrong", nil), gate.Env{ErrorRoutes: true, ClientIP: "198.51.100.1"})
				var rf *gate.Refusal
				if !errors.As(s.err, &rf) || rf.Status != http.StatusForbidden || rf.Reason != "bad_password" || s.resp.Body.Len() != 0 {
					t.Errorf("error %v, body %q", s.err, s.resp.Body.String())
				}
			})

			t.Run("every refusal is audited once with its reason", func(t *testing.T) {
				n := len(rig.rec.all())
				rig.serve(httptest.NewRequest(http.MethodGet, q+"wrong", nil), gate.Env{ClientIP: "198.51.100.2"})
				evs := rig.rec.all()[n:]
				if len(evs) != 1 || evs[0].Kind != kind || evs[0].Reason != "bad_password" || evs[0].Outcome != store.OutcomeRefused || evs[0].Status != http.StatusForbidden {
					t.Errorf("audited %+v", evs)
				}
			})
		})
	}
}

// A burst of concurrent wrong guesses is cut at the limit before the
// credential is checked: only the limit's worth is ever evaluated.
func TestPipelineThrottleReservesBeforeChecking(t *testing.T) {
	for _, kind := range []string{"alpha", "beta"} {
		t.Run(kind, func(t *testing.T) {
			rig := newFakeRig(t, 10)
			f := rig.kinds[0]
			if kind == "beta" {
				f = rig.kinds[1]
			}
			f.hold = make(chan struct{})
			const burst = 60
			codes := make(chan int, burst)
			var wg sync.WaitGroup
			for i := range burst {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Different ids: only the per-IP limit can stop them.
					r := httptest.NewRequest(http.MethodGet, "/x?kind="+kind+"&password=wrong&id=g"+string(rune('a'+i%26))+string(rune('a'+i/26)), nil)
					codes <- rig.serve(r, gate.Env{}).resp.Code
				}()
			}
			// Let the burst arrive while the first checks are still running.
			deadline := time.Now().Add(5 * time.Second)
			for f.uses.Load() < 10 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			close(f.hold)
			wg.Wait()
			close(codes)
			count := map[int]int{}
			for c := range codes {
				count[c]++
			}
			if f.uses.Load() != 10 || count[http.StatusForbidden] != 10 || count[http.StatusTooManyRequests] != burst-10 {
				t.Fatalf("burst of %d against a limit of 10: checked %d, statuses %v", burst, f.uses.Load(), count)
			}
		})
	}
}

// A right credential gives its reservation back: a person who gets in is
// never slowed down by their own successes.
func TestPipelineThrottleReleasesOnSuccess(t *testing.T) {
	rig := newFakeRig(t, 2)
	for i := range 20 {
		s := rig.serve(httptest.NewRequest(http.MethodGet, "/x?kind=alpha&id=t&password=right", nil), gate.Env{})
		if s.upstream == nil {
			t.Fatalf("success %d was throttled: %d", i, s.resp.Code)
		}
	}
	for range 2 {
		rig.serve(httptest.NewRequest(http.MethodGet, "/x?kind=alpha&id=t&password=wrong", nil), gate.Env{})
	}
	if s := rig.serve(httptest.NewRequest(http.MethodGet, "/x?kind=alpha&id=t&password=right", nil), gate.Env{}); s.resp.Code != http.StatusTooManyRequests || s.resp.Header().Get("Retry-After") == "" {
		t.Errorf("after the limit of failures: %d %v", s.resp.Code, s.resp.Header())
	}
}

// A session cookie of another site is refused, and not cleared: it may be
// that site's live session in a browser that shares cookies by host.
func TestPipelineSessionOfAnotherSite(t *testing.T) {
	rig := newFakeRig(t, 3)
	st := rig.st
	other := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{Site: "other.example"}, nil, nil)
	pages, _ := web.New("")
	g := gate.New(gate.Config{}, gate.Deps{Sessions: other, Store: st, Audit: rig.rec, Pages: pages})
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.AddCookie(&http.Cookie{Name: "latchkey_session", Value: rig.token})
	w := httptest.NewRecorder()
	reached := false
	_ = g.ServeHTTP(w, r, gate.Env{}, func(http.ResponseWriter, *http.Request) error { reached = true; return nil })
	if reached || w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Errorf("another site's session: %d, upstream %v, cookies %v", w.Code, reached, w.Result().Cookies())
	}
	evs := rig.rec.all()
	if len(evs) == 0 || evs[len(evs)-1].Reason != session.ReasonWrongSite {
		t.Errorf("audited %+v", evs)
	}
}
