package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// BenchmarkSessionByTokenHash is the lookup every proxied request makes,
// against a table of 10,000 sessions.
func BenchmarkSessionByTokenHash(b *testing.B) {
	ctx := b.Context()
	s := openTemp(b)
	const n = 10000
	u := &store.User{Email: "bench@example.org", Active: true}
	if err := s.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	hashes := make([][]byte, n)
	for i := range hashes {
		hashes[i] = []byte(fmt.Sprintf("%032d", i))
		sess := &store.Session{UserID: u.ID, TokenHash: hashes[i], ExpiresAt: now.Add(time.Hour), IP: "192.0.2.1", UserAgent: "bench"}
		if err := s.CreateSession(ctx, sess); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := s.SessionByTokenHash(ctx, hashes[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkSessionByTokenHashParallel(b *testing.B) {
	ctx := b.Context()
	s := openTemp(b)
	u := &store.User{Email: "bench@example.org", Active: true}
	if err := s.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := s.CreateSession(ctx, &store.Session{UserID: u.ID, TokenHash: hash, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.SessionByTokenHash(ctx, hash); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkTouchSession(b *testing.B) {
	ctx := b.Context()
	s := openTemp(b)
	u := &store.User{Email: "bench@example.org", Active: true}
	if err := s.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	sess := &store.Session{UserID: u.ID, TokenHash: []byte("h"), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		b.Fatal(err)
	}
	t := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t = t.Add(time.Millisecond)
		if err := s.TouchSession(ctx, sess.ID, t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteAudit writes batches of 512 realistic events, the size the
// audit writer flushes at, and reports rows per second.
func BenchmarkWriteAudit(b *testing.B) {
	ctx := b.Context()
	s := openTemp(b)
	const batch = 512
	events := make([]store.AuditEvent, batch)
	for i := range events {
		events[i] = store.AuditEvent{
			Kind:         "session",
			CredentialID: "cred-0123456789",
			UserID:       int64(i%50 + 1),
			SessionID:    "c2Vzc2lvbi1pZC0wMTIzNDU2",
			Outcome:      store.OutcomeAccepted,
			Method:       "GET",
			Host:         "wiki.example.org",
			Path:         fmt.Sprintf("/pages/%d?action=view", i),
			Status:       200,
			ClientIP:     "203.0.113.42",
			UserAgent:    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
			UABrowser:    "Firefox",
			UAVersion:    "128.0",
			UAOS:         "Linux",
			UADevice:     "desktop",
			Latency:      1234 * time.Microsecond,
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	rows := 0
	for b.Loop() {
		now := time.Now()
		for i := range events {
			events[i].Time = now
		}
		if err := s.WriteAudit(ctx, events); err != nil {
			b.Fatal(err)
		}
		rows += batch
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows), "ns/row")
}
