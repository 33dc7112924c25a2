package audit_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/audit"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

// BenchmarkWriterSQLite is the audit trail's sustained rate into a real
// SQLite file: b.N records go through Record, and the clock stops when Close
// has written the last one. It reports rows/s and the heap in use at the end
// (bounded by the queue, not by b.N).
func BenchmarkWriterSQLite(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	w := audit.NewWriter(st, audit.Options{EnqueueTimeout: time.Second}, audit.NewUAParser(0), nil)
	ev := store.AuditEvent{
		Time: time.Now(), Kind: "session", Outcome: store.OutcomeAccepted, Method: "GET", Host: "app.example.com",
		Path: "/reports/q3", Status: 200, ClientIP: "192.0.2.10", UserID: 1, SessionID: "0123456789abcdef0123456789abcdef",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36",
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Record(ev)
	}
	if err := w.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if w.Dropped() != 0 || w.Failed() != 0 || w.Written() != uint64(b.N) {
		b.Fatalf("written %d, dropped %d, failed %d of %d", w.Written(), w.Dropped(), w.Failed(), b.N)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

// BenchmarkWriterSQLiteRefusalFlood is a flood of identical refusals (one
// client, one reason) into a real SQLite file, which the writer aggregates:
// compare its refusals/s with BenchmarkWriterSQLite's rows/s, a row each.
// It reports refusals/s and the rows written.
func BenchmarkWriterSQLiteRefusalFlood(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	w := audit.NewWriter(st, audit.Options{EnqueueTimeout: time.Second}, audit.NewUAParser(0), nil)
	ev := store.AuditEvent{
		Kind: "ticket", Outcome: store.OutcomeRefused, Reason: "wrong_password", Method: "POST", Host: "app.example.com",
		Path: "/louvre", Status: 401, ClientIP: "198.51.100.7", UserAgent: "python-requests/2.32",
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Time = time.Now()
		w.Record(ev)
	}
	if err := w.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if w.Dropped() != 0 || w.Failed() != 0 || w.Written()+w.Aggregated() != uint64(b.N) {
		b.Fatalf("written %d, aggregated %d, dropped %d, failed %d of %d", w.Written(), w.Aggregated(), w.Dropped(), w.Failed(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refusals/s")
	b.ReportMetric(float64(w.Written()), "rows")
}
