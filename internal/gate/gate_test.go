package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/audit"
	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/web"
)

func TestHeaderStripper(t *testing.T) {
	s := gate.NewHeaderStripper([]string{"X-User-ID", "X-Session-ID"}, []string{"X-Latchkey-"})
	strip := []string{"X-User-ID", "x-user-id", "X_User_Id", "X-USER-ID", "x_user_id", "X-User_ID", "X-Session-Id", "x_session_id", "X-Latchkey-Link-Data", "x_latchkey_anything", "X-LATCHKEY-"}
	keep := []string{"X-User", "X-User-IDs", "X-User-ID2", "User-ID", "X-Latchkey", "Accept", "X-Userid", "Cookie"}
	h := http.Header{}
	for _, k := range append(append([]string{}, strip...), keep...) {
		h[k] = []string{"v"}
	}
	if n := s.Strip(h); n != len(strip) {
		t.Errorf("stripped %d headers, want %d", n, len(strip))
	}
	for _, k := range strip {
		if _, ok := h[k]; ok {
			t.Errorf("%s survived", k)
		}
	}
	for _, k := range keep {
		if _, ok := h[k]; !ok {
			t.Errorf("%s was stripped", k)
		}
	}
}

func TestSafeNext(t *testing.T) {
	cases := map[string]string{
		"/":                             "/",
		"/reports?q=1#x":                "/reports?q=1#x",
		"/a/b/c":                        "/a/b/c",
		"":                              "",
		"reports":                       "",
		"//evil.example":                "",
		"/\\evil.example":               "",
		"https://evil.example":          "",
		"/\x00":                         "",
		"/ok\r\nSet-Cookie: x":          "",
		"/path\\with":                   "",
		"javascript:alert(1)":           "",
		"/" + strings.Repeat("a", 3000): "",
	}
	for in, want := range cases {
		if got := gate.SafeNext(in); got != want {
			t.Errorf("SafeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "//x", "/\\x", "https://x", "/a?b=c", "/%2F%2Fx", "/\t/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := gate.SafeNext(s)
		if got == "" {
			return
		}
		if got != s {
			t.Fatalf("SafeNext changed %q to %q", s, got)
		}
		// Whatever it lets through must resolve to the same host.
		base, _ := http.NewRequest(http.MethodGet, "https://site.example/start", nil)
		u, err := base.URL.Parse(got)
		if err != nil || u.Host != "site.example" || u.Scheme != "https" {
			t.Fatalf("SafeNext let %q through; it resolves to %v (err %v)", s, u, err)
		}
	})
}

func FuzzHeaderStripper(f *testing.F) {
	s := gate.NewHeaderStripper([]string{"X-User-ID", "X-Session-ID"}, []string{"X-Latchkey-"})
	for _, k := range []string{"X-User-ID", "x_user_id", "X-Latchkey-A", "Accept", "X-User-I", ""} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		h := http.Header{k: {"v"}}
		s.Strip(h)
		n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		forbidden := n == "x-user-id" || n == "x-session-id" || strings.HasPrefix(n, "x-latchkey-")
		if _, kept := h[k]; kept == forbidden {
			t.Fatalf("header %q: kept=%v, forbidden=%v", k, kept, forbidden)
		}
	})
}

type nopRecorder struct{ n int }

func (r *nopRecorder) Record(store.AuditEvent)             { r.n++ }
func (r *nopRecorder) Describe(*store.AuditEvent)          {}
func (r *nopRecorder) SetStatus(int64, int, time.Duration) {}

// newGate builds a gate on a real SQLite store with one signed-in user.
func newGate(t testing.TB, rec gate.Recorder) (*gate.Gate, string, *store.Session) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &store.User{Email: "b@example.com", Active: true}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	m := session.New(st, []byte("0123456789abcdef0123456789abcdef"), session.Config{}, session.NewCache(0), nil)
	token, s, err := m.Start(context.Background(), u.ID, "test", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := web.New("")
	if err != nil {
		t.Fatal(err)
	}
	if rec == nil {
		rec = &nopRecorder{}
	}
	return gate.New(gate.Config{}, gate.Deps{Sessions: m, Store: st, Audit: rec, Pages: pages}), token, s
}

type vars map[string]any

func (v vars) Set(k string, val any) { v[k] = val }

func TestPlaceholdersAndHeaders(t *testing.T) {
	rec := &nopRecorder{}
	g, token, s := newGate(t, rec)
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.AddCookie(&http.Cookie{Name: "latchkey_session", Value: token})
	r.Header["x_user_id"] = []string{"999"}
	v := vars{}
	var upstream http.Header
	err := g.ServeHTTP(httptest.NewRecorder(), r, gate.Env{ClientIP: "192.0.2.7", Vars: v}, func(w http.ResponseWriter, r *http.Request) error {
		upstream = r.Header.Clone()
		w.WriteHeader(http.StatusCreated)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if upstream.Get("X-Session-ID") != s.ID || v[gate.VarSessionID] != s.ID || v[gate.VarUserID] != upstream.Get("X-User-ID") {
		t.Errorf("upstream %v vars %v", upstream, v)
	}
	if _, forged := upstream["x_user_id"]; forged {
		t.Error("forged header passed")
	}
	if rec.n != 1 {
		t.Errorf("%d audit records, want 1", rec.n)
	}
}

// BenchmarkSessionHotPath is the whole per-request cost of a signed-in
// request: strip headers, cookie → session → user, set headers and
// placeholders, wrap the writer, and queue the audit record. "request_path"
// counts only what the request itself pays; "with_sqlite_audit" also carries
// the audit writer's work on a real SQLite store, which on 2 cores competes
// with the requests for CPU.
func BenchmarkSessionHotPath(b *testing.B) {
	b.Run("request_path", func(b *testing.B) { benchHotPath(b, &nopRecorder{}) })
	b.Run("with_sqlite_audit", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "w.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		w := audit.NewWriter(st, audit.Options{}, audit.NewUAParser(1024), nil)
		benchHotPath(b, w)
		b.StopTimer()
		w.Close(context.Background())
		if d := w.Dropped(); d > 0 {
			b.ReportMetric(float64(d), "dropped")
		}
	})
}

func benchHotPath(b *testing.B, rec gate.Recorder) {
	g, token, _ := newGate(b, rec)
	next := func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(http.StatusOK); return nil }
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
	// The gate removes its cookie before the upstream sees the request:
	// every iteration sends it again, or all but the first are refusals.
	cookie := []string{"latchkey_session=" + token}
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

// benchWriter is a ResponseWriter that keeps only the last status, so that
// a benchmark's responses do not pile up in memory.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }

func BenchmarkHeaderStrip(b *testing.B) {
	s := gate.NewHeaderStripper([]string{"X-User-ID", "X-Session-ID"}, []string{"X-Latchkey-"})
	base := http.Header{
		"Accept": {"text/html"}, "Accept-Encoding": {"gzip"}, "Accept-Language": {"en"}, "Cookie": {"a=b"},
		"User-Agent": {"Mozilla/5.0"}, "Referer": {"https://x/"}, "Sec-Fetch-Site": {"same-origin"}, "X_user_id": {"1"},
	}
	h := make(http.Header, len(base))
	b.ReportAllocs()
	for b.Loop() {
		for k, v := range base {
			h[k] = v
		}
		s.Strip(h)
	}
}
