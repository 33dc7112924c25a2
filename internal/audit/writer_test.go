package audit

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// waitLimit bounds every wait in these tests. It is a deadlock detector, not
// a performance assertion, so it is generous.
const waitLimit = 10 * time.Second

// memSink keeps copies of what it is given, because the writer reuses the
// batch slice.
type memSink struct {
	mu      sync.Mutex
	batches [][]store.AuditEvent
	got     chan int // receives each batch's length, if non-nil
}

func (s *memSink) WriteAudit(_ context.Context, events []store.AuditEvent) error {
	s.mu.Lock()
	s.batches = append(s.batches, slices.Clone(events))
	s.mu.Unlock()
	if s.got != nil {
		s.got <- len(events)
	}
	return nil
}

func (s *memSink) events() []store.AuditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []store.AuditEvent
	for _, b := range s.batches {
		all = append(all, b...)
	}
	return all
}

func (s *memSink) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []int
	for _, b := range s.batches {
		n = append(n, len(b))
	}
	return n
}

func event(id int64) store.AuditEvent {
	return store.AuditEvent{
		ID:        id,
		Time:      time.Unix(1700000000, 0),
		Kind:      "session",
		Outcome:   store.OutcomeAccepted,
		UserAgent: uaChromeWindows,
	}
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("Close returned nil but the writer goroutine is still running")
	}
}

func TestWriterBatches(t *testing.T) {
	sink := &memSink{}
	// An hour-long interval leaves batch size and Close as the only
	// triggers.
	w := NewWriter(sink, Options{BatchSize: 10, FlushInterval: time.Hour}, nil, nil)
	const n = 95
	for i := range n {
		w.Record(event(int64(i)))
	}
	closeWriter(t, w)

	sizes := sink.sizes()
	want := []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 5}
	if !slices.Equal(sizes, want) {
		t.Errorf("batch sizes = %v, want %v", sizes, want)
	}
	for i, e := range sink.events() {
		if e.ID != int64(i) {
			t.Fatalf("event %d has ID %d: order not kept", i, e.ID)
		}
	}
	if w.Written() != n || w.Dropped() != 0 || w.Failed() != 0 {
		t.Errorf("written, dropped, failed = %d, %d, %d; want %d, 0, 0", w.Written(), w.Dropped(), w.Failed(), n)
	}
}

func TestWriterFillsUA(t *testing.T) {
	sink := &memSink{}
	w := NewWriter(sink, Options{}, NewUAParser(8), nil)
	e := event(1)
	e.UserAgent = uaSafariIPhone
	w.Record(e)
	w.Record(store.AuditEvent{ID: 2}) // no User-Agent at all
	huge := event(3)
	huge.UserAgent = uaCurl + strings.Repeat("A", 1<<20)
	w.Record(huge)
	closeWriter(t, w)

	got := sink.events()
	if len(got) != 3 {
		t.Fatalf("sink got %d events, want 3", len(got))
	}
	if g := got[0]; g.UABrowser != "Safari" || g.UAVersion != "17.4" || g.UAOS != "iOS 17.4" || g.UADevice != DeviceMobile || g.UABot {
		t.Errorf("iPhone event UA fields = %q %q %q %q %v", g.UABrowser, g.UAVersion, g.UAOS, g.UADevice, g.UABot)
	}
	if g := got[1]; g.UADevice != DeviceUnknown || g.UABrowser != "" {
		t.Errorf("empty UA: device %q browser %q; want unknown, empty", g.UADevice, g.UABrowser)
	}
	if g := got[2]; len(g.UserAgent) != MaxUALen || g.UABrowser != "curl" {
		t.Errorf("1MB UA: stored %d bytes, browser %q; want %d, curl", len(g.UserAgent), g.UABrowser, MaxUALen)
	}
}

func TestWriterFlushInterval(t *testing.T) {
	sink := &memSink{got: make(chan int, 10)}
	w := NewWriter(sink, Options{BatchSize: 1000, FlushInterval: 10 * time.Millisecond}, nil, nil)
	defer closeWriter(t, w)

	for i := range 3 {
		w.Record(event(int64(i)))
	}
	// Neither the batch size nor Flush nor Close can trigger this write.
	select {
	case n := <-sink.got:
		if n != 3 {
			t.Errorf("first batch has %d events, want 3", n)
		}
	case <-time.After(waitLimit):
		t.Fatal("partial batch never written")
	}
}

func TestWriterFlush(t *testing.T) {
	sink := &memSink{}
	w := NewWriter(sink, Options{FlushInterval: time.Hour}, nil, nil)
	defer closeWriter(t, w)

	for i := range 7 {
		w.Record(event(int64(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if n := len(sink.events()); n != 7 || w.Written() != 7 {
		t.Errorf("after Flush sink has %d, Written %d; want 7", n, w.Written())
	}
	// Flush with nothing queued returns too.
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("empty Flush: %v", err)
	}
}

func TestWriterCloseWritesAll(t *testing.T) {
	sink := &memSink{}
	const producers, per = 8, 2000
	// The queue holds everything, so nothing may be dropped whatever the
	// scheduling.
	w := NewWriter(sink, Options{QueueSize: producers * per, BatchSize: 100}, nil, nil)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range per {
				w.Record(event(int64(p*per + i)))
			}
		})
	}
	wg.Wait()
	closeWriter(t, w)

	seen := make(map[int64]bool)
	for _, e := range sink.events() {
		if seen[e.ID] {
			t.Fatalf("event %d written twice", e.ID)
		}
		seen[e.ID] = true
	}
	if len(seen) != producers*per || w.Written() != producers*per || w.Dropped() != 0 {
		t.Errorf("sink has %d distinct, Written %d, Dropped %d; want %d, %d, 0",
			len(seen), w.Written(), w.Dropped(), producers*per, producers*per)
	}
	for _, n := range sink.sizes() {
		if n > 100 {
			t.Errorf("batch of %d > BatchSize", n)
		}
	}
}

func TestWriterRecordAfterClose(t *testing.T) {
	sink := &memSink{}
	w := NewWriter(sink, Options{}, nil, nil)
	w.Record(event(1))
	closeWriter(t, w)
	w.Record(event(2))
	w.Record(event(3))
	if w.Dropped() != 2 || w.Written() != 1 {
		t.Errorf("dropped, written = %d, %d; want 2, 1", w.Dropped(), w.Written())
	}
	// Close and Flush stay harmless afterwards.
	closeWriter(t, w)
	if err := w.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
}

// blockingSink signals each call on entered and then waits for release or
// for ctx to end.
type blockingSink struct {
	entered chan struct{}
	release chan struct{}
	n       atomic.Int64
}

func (s *blockingSink) WriteAudit(ctx context.Context, events []store.AuditEvent) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
		s.n.Add(int64(len(events)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestWriterDropsWhenFull(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	sink := &blockingSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := NewWriter(sink, Options{QueueSize: 4, BatchSize: 1, EnqueueTimeout: time.Millisecond}, nil, zap.New(core))

	// The first event occupies the writer goroutine inside the sink.
	w.Record(event(0))
	select {
	case <-sink.entered:
	case <-time.After(waitLimit):
		t.Fatal("sink never called")
	}

	// Four fit in the queue; the rest must come back dropped rather than
	// wait for the stuck sink.
	const extra = 10
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := range 4 + extra {
			w.Record(event(int64(i + 1)))
		}
	}()
	select {
	case <-returned:
	case <-time.After(waitLimit):
		t.Fatal("Record blocked on a full queue")
	}
	if w.Dropped() != extra {
		t.Errorf("Dropped = %d, want %d", w.Dropped(), extra)
	}
	// Rate-limited: far fewer warnings than drops, and they carry the
	// running count.
	warns := logs.FilterMessage("audit event dropped").All()
	if len(warns) == 0 || len(warns) >= extra {
		t.Errorf("%d drop warnings for %d drops; want at least 1 and rate-limited", len(warns), extra)
	} else if _, ok := warns[0].ContextMap()["dropped_total"]; !ok {
		t.Errorf("drop warning lacks dropped_total: %v", warns[0].ContextMap())
	}

	close(sink.release)
	closeWriter(t, w)
	if got := sink.n.Load(); got != 5 || w.Written() != 5 {
		t.Errorf("sink wrote %d, Written %d; want 5", got, w.Written())
	}
}

// flakySink fails the calls whose number (from 0) is in fail.
type flakySink struct {
	memSink
	calls atomic.Int64
	fail  map[int64]bool
}

var errStoreDown = errors.New("store down")

func (s *flakySink) WriteAudit(ctx context.Context, events []store.AuditEvent) error {
	if s.fail[s.calls.Add(1)-1] {
		return errStoreDown
	}
	return s.memSink.WriteAudit(ctx, events)
}

func TestWriterSinkError(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	sink := &flakySink{fail: map[int64]bool{0: true}}
	w := NewWriter(sink, Options{BatchSize: 5, FlushInterval: time.Hour}, nil, zap.New(core))
	defer closeWriter(t, w)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for i := range 5 {
		w.Record(event(int64(i)))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w.Record(event(int64(10 + i)))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	if w.Failed() != 5 || w.Written() != 3 {
		t.Errorf("failed, written = %d, %d; want 5, 3", w.Failed(), w.Written())
	}
	if got := sink.events(); len(got) != 3 || got[0].ID != 10 {
		t.Errorf("sink got %d events after the failure, want 3 starting at ID 10", len(got))
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d error log entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if fields["events_lost"] != uint64(5) || fields["error"] != errStoreDown.Error() {
		t.Errorf("failure log fields = %v; want events_lost 5 and the error", fields)
	}
}

func TestWriterCloseTimeout(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	sink := &blockingSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := NewWriter(sink, Options{BatchSize: 1}, nil, zap.New(core))
	for i := range 4 {
		w.Record(event(int64(i)))
	}
	select {
	case <-sink.entered:
	case <-time.After(waitLimit):
		t.Fatal("sink never called")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a stuck sink = %v, want deadline exceeded", err)
	}
	// The stuck call is cancelled, the rest abandoned, and the goroutine
	// still exits.
	select {
	case <-w.done:
	case <-time.After(waitLimit):
		t.Fatal("writer goroutine still running after Close gave up")
	}
	if w.Failed() != 4 || w.Written() != 0 {
		t.Errorf("failed, written = %d, %d; want 4, 0", w.Failed(), w.Written())
	}
	var lost uint64
	for _, e := range logs.All() {
		lost += e.ContextMap()["events_lost"].(uint64)
	}
	if lost != 4 {
		t.Errorf("logs account for %d lost events, want 4", lost)
	}
	// A later Close sees the finished shutdown.
	closeWriter(t, w)
}

func TestWriterCloseRace(t *testing.T) {
	// Whatever the interleaving of Record and Close, every event is
	// accounted for exactly once and nothing panics.
	sink := &memSink{}
	w := NewWriter(sink, Options{QueueSize: 64, BatchSize: 16}, nil, nil)
	const producers, per = 8, 500
	var wg sync.WaitGroup
	start := make(chan struct{})
	for p := range producers {
		wg.Go(func() {
			<-start
			for i := range per {
				w.Record(event(int64(p*per + i)))
			}
		})
	}
	close(start)
	time.Sleep(time.Millisecond)
	closeWriter(t, w)
	wg.Wait()

	total := w.Written() + w.Dropped() + w.Failed()
	if total != producers*per {
		t.Errorf("written %d + dropped %d + failed %d = %d, want %d",
			w.Written(), w.Dropped(), w.Failed(), total, producers*per)
	}
	if uint64(len(sink.events())) != w.Written() {
		t.Errorf("sink has %d events, Written says %d", len(sink.events()), w.Written())
	}
}

func TestWriterNoGoroutineLeak(t *testing.T) {
	settle := func() int {
		// Let goroutines from earlier tests finish exiting.
		n := runtime.NumGoroutine()
		for range 100 {
			time.Sleep(5 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				return n
			}
			n = m
		}
		return n
	}
	before := settle()
	writers := make([]*Writer, 10)
	for i := range writers {
		writers[i] = NewWriter(&memSink{}, Options{}, nil, nil)
		writers[i].Record(event(1))
	}
	if n := runtime.NumGoroutine(); n < before+len(writers) {
		t.Fatalf("%d goroutines with %d writers running, started from %d", n, len(writers), before)
	}
	for _, w := range writers {
		closeWriter(t, w)
	}
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// countSink copies each batch into a reused buffer, as a store would copy
// rows into a statement, without keeping them.
type countSink struct {
	buf []store.AuditEvent
}

func (s *countSink) WriteAudit(_ context.Context, events []store.AuditEvent) error {
	s.buf = append(s.buf[:0], events...)
	return nil
}

func BenchmarkWriterRecord(b *testing.B) {
	w := NewWriter(&countSink{}, Options{}, nil, nil)
	e := event(1)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Record(e)
		}
	})
	if err := w.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(w.Dropped()), "dropped")
	if err := w.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}
