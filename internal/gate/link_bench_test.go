package gate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/internal/audit"
	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
	"github.com/latchkeyhq/latchkey/internal/web"
)

// BenchmarkLinkVerifyAndCount is the per-request cost of a request-mode
// signed link with unlimited uses, on a real SQLite store:
//
//   - request_path: the whole gate (strip headers, find the token, verify
//     the JWT, bind it to host, path and method, look the user up, count the
//     use and write its audit record in one transaction, set the identity,
//     call next, write the upstream's status to the audit record);
//   - verify: the key ring's Verify alone, the part that needs no store.
//
// The use and its record ride in the batching audit writer's transactions
// (a real one, on the same store), so request_path writes nothing itself.
func BenchmarkLinkVerifyAndCount(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	ring, err := link.NewKeyRing(link.HS256Key(secret, "default"))
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "l.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	u := &store.User{Email: "l@example.com", Active: true}
	if err := st.CreateUser(context.Background(), u); err != nil {
		b.Fatal(err)
	}
	const rawURL = "https://app.example/unsubscribe?list=news"
	target, _ := url.Parse(rawURL)
	now := time.Now()
	c := &link.Claims{Target: link.TargetOf(target), Mode: link.ModeRequest, MaxUses: 0}
	c.Subject = strconv.FormatInt(u.ID, 10)
	c.ID = link.NewJTI()
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(24 * time.Hour))
	token, err := ring.Sign(c)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.CreateLink(context.Background(), &store.Link{
		JTI: c.ID, Site: "default", UserID: u.ID, Target: c.Target, Mode: c.Mode, CreatedAt: now, ExpiresAt: c.ExpiresAt.Time,
	}); err != nil {
		b.Fatal(err)
	}

	b.Run("request_path", func(b *testing.B) {
		pages, err := web.New("")
		if err != nil {
			b.Fatal(err)
		}
		w := audit.NewWriter(st, audit.Options{}, nil, nil)
		defer w.Close(context.Background())
		// As in the app: the session cache, following the store's changes,
		// holds the user and link rows too.
		cache := session.NewCache(0)
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go cache.Follow(ctx, st, session.FollowConfig{})
		m := session.New(st, secret, session.Config{Site: "default"}, cache, nil)
		g := gate.New(gate.Config{Link: gate.LinkConfig{Confirm: true}},
			gate.Deps{Store: st, Audit: w, Pages: pages, Links: ring, Sessions: m})
		next := func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(http.StatusOK); return nil }
		query := target.RawQuery + "&token=" + token
		r := httptest.NewRequest(http.MethodGet, rawURL+"&token="+token, nil)
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36")
		rw := httptest.NewRecorder()
		v := vars{}
		uses := 0
		if l, err := st.Link(context.Background(), c.ID); err == nil {
			uses = l.Uses
		}
		b.ReportAllocs()
		for b.Loop() {
			// The gate takes the token out of the request it passes on.
			r.URL.RawQuery = query
			if err := g.ServeHTTP(rw, r, gate.Env{ClientIP: "127.0.0.1", Vars: v}, next); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := w.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		if rw.Code != http.StatusOK || r.URL.RawQuery != target.RawQuery || r.Header.Get("X-User-ID") != c.Subject {
			b.Fatalf("status %d, query %q, X-User-ID %q", rw.Code, r.URL.RawQuery, r.Header.Get("X-User-ID"))
		}
		l, err := st.Link(context.Background(), c.ID)
		if err != nil {
			b.Fatal(err)
		}
		if l.Uses-uses != b.N {
			b.Fatalf("%d uses counted, want %d", l.Uses-uses, b.N)
		}
	})

	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, reason, err := ring.Verify(token, now); err != nil {
				b.Fatal(reason, err)
			}
		}
	})
}
