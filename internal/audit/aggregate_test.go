package audit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// fakeClock is the writer's clock in these tests: it moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func refusal(ip, reason string, at time.Duration) store.AuditEvent {
	return store.AuditEvent{
		Time: t0.Add(at), Kind: "ticket", Outcome: store.OutcomeRefused, Reason: reason,
		Method: "GET", Host: "wiki.example.org", Path: "/t", Status: 401, ClientIP: ip, UserAgent: uaCurl,
	}
}

func flush(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// counts sums the Count of every record, and counts the records, refusals
// only.
func refusalCounts(evs []store.AuditEvent) (rows int, attempts int64) {
	for _, e := range evs {
		if e.Outcome == store.OutcomeRefused {
			rows++
			attempts += max(e.Count, 1)
		}
	}
	return rows, attempts
}

// newTestWriter is a writer whose aggregates are due only on Flush or Close
// (its clock does not move), writing to a memSink.
func newTestWriter(opts Options) (*Writer, *memSink) {
	sink := &memSink{}
	if opts.Now == nil {
		opts.Now = (&fakeClock{now: t0}).Now
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Hour
	}
	return NewWriter(sink, opts, nil, nil), sink
}

func TestWriterAggregatesAFlood(t *testing.T) {
	w, sink := newTestWriter(Options{})
	defer closeWriter(t, w)
	// 100 refusals within one second: the path and the user agent vary,
	// which an attacker gets for free, so they do not split the flood.
	for i := range 100 {
		e := refusal("198.51.100.7", "wrong_password", time.Duration(i)*5*time.Millisecond)
		e.Path = fmt.Sprintf("/t/%d", i)
		if i%2 == 1 {
			e.UserAgent = uaSafariIPhone
		}
		w.Record(e)
	}
	flush(t, w)
	got := sink.events()
	if len(got) != 1 {
		t.Fatalf("%d records for a flood of 100 identical refusals, want 1: %+v", len(got), got)
	}
	e := got[0]
	if e.Count != 100 || e.Path != "/t/0" || !e.Time.Equal(t0) || e.UABrowser != "curl" || e.Reason != "wrong_password" {
		t.Errorf("aggregate %+v; want the first refusal counting 100", e)
	}
	if w.Written() != 1 || w.Aggregated() != 99 || w.Dropped() != 0 {
		t.Errorf("written %d, aggregated %d, dropped %d; want 1, 99, 0", w.Written(), w.Aggregated(), w.Dropped())
	}
}

func TestWriterAggregatesWithinOneSecondOnly(t *testing.T) {
	w, sink := newTestWriter(Options{})
	defer closeWriter(t, w)
	for _, at := range []time.Duration{0, 300 * time.Millisecond, 999 * time.Millisecond, // the first second
		time.Second, 1500 * time.Millisecond, // the next, from its first refusal
		2*time.Second + 500*time.Millisecond, // the one after
	} {
		w.Record(refusal("198.51.100.7", "missing", at))
	}
	// A refusal stamped a little before the first (requests reach the
	// queue out of order) is in its window too.
	w.Record(refusal("198.51.100.7", "missing", 2*time.Second+400*time.Millisecond))
	flush(t, w)
	got := sink.events()
	want := []struct {
		at    time.Duration
		count int64
	}{{0, 3}, {time.Second, 2}, {2*time.Second + 500*time.Millisecond, 2}}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if !got[i].Time.Equal(t0.Add(w.at)) || got[i].Count != w.count {
			t.Errorf("record %d: at %v counting %d, want at %v counting %d", i, got[i].Time.Sub(t0), got[i].Count, w.at, w.count)
		}
	}
	if _, n := refusalCounts(got); n != 7 {
		t.Errorf("counts add up to %d, want the 7 refusals", n)
	}
}

func TestWriterAggregateKey(t *testing.T) {
	w, sink := newTestWriter(Options{})
	defer closeWriter(t, w)
	base := refusal("198.51.100.7", "wrong_password", 0)
	variants := []func(e *store.AuditEvent){
		func(e *store.AuditEvent) {},
		func(e *store.AuditEvent) { e.ClientIP = "198.51.100.8" },
		func(e *store.AuditEvent) { e.Reason = "unknown" },
		func(e *store.AuditEvent) { e.Kind = "link" },
		func(e *store.AuditEvent) { e.Host = "other.example.org" },
	}
	for range 3 {
		for _, v := range variants {
			e := base
			v(&e)
			w.Record(e)
		}
	}
	flush(t, w)
	got := sink.events()
	if len(got) != len(variants) {
		t.Fatalf("%d records, want one for each of %d distinct refusals: %+v", len(got), len(variants), got)
	}
	for _, e := range got {
		if e.Count != 3 {
			t.Errorf("%s %s %s %s counts %d, want 3", e.ClientIP, e.Reason, e.Kind, e.Host, e.Count)
		}
	}
}

func TestWriterNeverAggregatesAccepted(t *testing.T) {
	w, sink := newTestWriter(Options{})
	defer closeWriter(t, w)
	for i := range 50 {
		e := refusal("198.51.100.7", "", time.Duration(i)*time.Millisecond)
		e.Outcome = store.OutcomeAccepted
		w.Record(e)
		w.SetStatus(int64(i+1), 200, time.Millisecond)
	}
	flush(t, w)
	got := sink.events()
	var rows, updates int
	for _, e := range got {
		if e.StatusUpdate {
			updates++
			continue
		}
		rows++
		if e.Count > 1 {
			t.Errorf("accepted record aggregated: %+v", e)
		}
	}
	if rows != 50 || updates != 50 || w.Aggregated() != 0 || w.Written() != 50 {
		t.Errorf("%d records, %d status updates, aggregated %d, written %d; want 50, 50, 0, 50", rows, updates, w.Aggregated(), w.Written())
	}
}

func TestWriterAggregatesAcrossBatches(t *testing.T) {
	w, sink := newTestWriter(Options{BatchSize: 4})
	defer closeWriter(t, w)
	for i := range 40 {
		w.Record(refusal("198.51.100.7", "missing", time.Duration(i)*time.Millisecond))
		a := event(0)
		a.ID = 0
		w.Record(a) // fills batches, which are written meanwhile
	}
	flush(t, w)
	rows, n := refusalCounts(sink.events())
	if rows != 1 || n != 40 {
		t.Errorf("%d refusal records counting %d, want 1 counting 40", rows, n)
	}
	if len(sink.sizes()) < 10 {
		t.Errorf("only %d batches: the accepted records did not go out meanwhile", len(sink.sizes()))
	}
}

// TestWriterWritesWhenTheWindowEnds: without Flush, an aggregate is
// written once its window is over by the writer's clock.
func TestWriterWritesWhenTheWindowEnds(t *testing.T) {
	sink := &memSink{got: make(chan int, 10)}
	w := NewWriter(sink, Options{AggregateWindow: 50 * time.Millisecond, FlushInterval: time.Millisecond}, nil, nil)
	defer closeWriter(t, w)
	start := time.Now()
	for range 10 {
		e := refusal("198.51.100.7", "missing", 0)
		e.Time = start
		w.Record(e)
	}
	select {
	case n := <-sink.got:
		if n != 1 {
			t.Errorf("first batch has %d records, want the aggregate alone", n)
		}
	case <-time.After(waitLimit):
		t.Fatal("the aggregate was never written")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("aggregate written after %v, before its window ended", d)
	}
	if got := sink.events(); got[0].Count != 10 {
		t.Errorf("aggregate counts %d, want 10", got[0].Count)
	}
}

func TestWriterAggregationOff(t *testing.T) {
	w, sink := newTestWriter(Options{AggregateWindow: -1})
	defer closeWriter(t, w)
	for range 5 {
		w.Record(refusal("198.51.100.7", "missing", 0))
	}
	flush(t, w)
	if got := sink.events(); len(got) != 5 || w.Aggregated() != 0 {
		t.Errorf("%d records, aggregated %d; want 5, 0", len(got), w.Aggregated())
	}
}

// TestWriterMaxAggregates: past the bound, a refusal that would open one
// more aggregate is written on its own; nothing is lost.
func TestWriterMaxAggregates(t *testing.T) {
	w, sink := newTestWriter(Options{MaxAggregates: 2})
	defer closeWriter(t, w)
	for i := range 4 {
		for range 2 {
			w.Record(refusal(fmt.Sprintf("198.51.100.%d", i), "missing", 0))
		}
	}
	flush(t, w)
	rows, n := refusalCounts(sink.events())
	if n != 8 || rows != 2+4 {
		t.Errorf("%d records counting %d; want 6 (2 aggregates, 4 single) counting 8", rows, n)
	}
}

// recSink records what it is given, each call waiting for hold to be
// closed (if set) or for ctx to end.
type recSink struct {
	memSink
	entered chan struct{}
	hold    chan struct{}
}

func (s *recSink) WriteAudit(ctx context.Context, events []store.AuditEvent) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.memSink.WriteAudit(ctx, events)
}

// stall makes a writer whose goroutine is stuck in the sink and whose queue
// is full: it returns once both hold.
func stall(t *testing.T, opts Options) (*Writer, *recSink) {
	t.Helper()
	sink := &recSink{entered: make(chan struct{}, 1), hold: make(chan struct{})}
	opts.BatchSize = 1
	w := NewWriter(sink, opts, nil, nil)
	first := event(0)
	w.Record(first)
	select {
	case <-sink.entered:
	case <-time.After(waitLimit):
		t.Fatal("sink never called")
	}
	for len(w.queue) < cap(w.queue) {
		w.Record(event(1))
	}
	return w, sink
}

// TestWriterSpillsRefusalsWhenFull: with the queue full and the store
// stuck, refusals are counted in memory instead of being dropped, without
// making the requests wait, and are written aggregated once the writer
// catches up: the counts add up to every refusal.
func TestWriterSpillsRefusalsWhenFull(t *testing.T) {
	w, sink := stall(t, Options{QueueSize: 4, EnqueueTimeout: time.Hour})
	const n = 3000
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := range n {
			w.Record(refusal(fmt.Sprintf("203.0.113.%d", i%3), "wrong_password", time.Duration(i)*time.Microsecond))
		}
	}()
	select {
	case <-returned:
	case <-time.After(waitLimit):
		t.Fatal("refusals waited for room in the full queue")
	}
	if w.Dropped() != 0 {
		t.Errorf("%d refusals dropped with the queue full", w.Dropped())
	}
	close(sink.hold)
	closeWriter(t, w)
	rows, attempts := refusalCounts(sink.events())
	if attempts != n {
		t.Errorf("the refusal records count %d, want all %d", attempts, n)
	}
	if rows > 6 {
		t.Errorf("%d refusal records for 3 clients' floods", rows)
	}
	if uint64(rows)+w.Aggregated() != n {
		t.Errorf("%d records + %d aggregated != %d refusals", rows, w.Aggregated(), n)
	}
}

// TestWriterOverflowFull: distinct refusals beyond OverflowSize wait like
// any other event and are then dropped, counted.
func TestWriterOverflowFull(t *testing.T) {
	w, sink := stall(t, Options{QueueSize: 2, EnqueueTimeout: time.Millisecond, OverflowSize: 2})
	for i := range 3 {
		for range 5 {
			w.Record(refusal(fmt.Sprintf("203.0.113.%d", i), "missing", 0))
		}
	}
	if w.Dropped() != 5 {
		t.Errorf("dropped %d, want the third client's 5", w.Dropped())
	}
	close(sink.hold)
	closeWriter(t, w)
	if _, n := refusalCounts(sink.events()); n != 10 {
		t.Errorf("records count %d refusals, want 10", n)
	}
}

// TestWriterSpilledRefusalsAreFlushed: Flush writes what the overflow holds
// too, and a refusal that finds it empty later wakes the writer.
func TestWriterSpilledRefusalsAreFlushed(t *testing.T) {
	w, sink := stall(t, Options{QueueSize: 1, EnqueueTimeout: time.Hour})
	defer closeWriter(t, w)
	w.Record(refusal("203.0.113.1", "missing", 0))
	w.Record(refusal("203.0.113.1", "missing", 0))
	close(sink.hold)
	flush(t, w)
	if _, n := refusalCounts(sink.events()); n != 2 {
		t.Errorf("after Flush the records count %d refusals, want 2", n)
	}
}

// TestWriterFloodAccounting: many clients' floods from many goroutines into
// a small queue: every refusal is in a record's count, dropped or failed,
// never lost silently.
func TestWriterFloodAccounting(t *testing.T) {
	sink := &memSink{}
	w := NewWriter(sink, Options{QueueSize: 16, BatchSize: 8, FlushInterval: time.Millisecond, AggregateWindow: 5 * time.Millisecond}, nil, nil)
	const producers, per = 8, 2000
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range per {
				e := refusal(fmt.Sprintf("203.0.113.%d", (p+i)%5), "missing", 0)
				e.Time = time.Now()
				w.Record(e)
			}
		})
	}
	wg.Wait()
	closeWriter(t, w)
	_, n := refusalCounts(sink.events())
	if n+int64(w.Dropped()) != producers*per {
		t.Errorf("records count %d, dropped %d: %d refusals unaccounted for", n, w.Dropped(), producers*per-n-int64(w.Dropped()))
	}
	if w.Dropped() != 0 {
		t.Errorf("%d refusals dropped with room in the overflow", w.Dropped())
	}
}

func TestRecordActivity(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want int
	}{{"", 3}, {SessionsActivity, 3}, {SessionsEveryRequest, 300}} {
		t.Run(tc.mode, func(t *testing.T) {
			w, sink := newTestWriter(Options{Sessions: tc.mode})
			defer closeWriter(t, w)
			for _, client := range []struct{ ip, ua string }{
				{"192.0.2.1", uaChromeWindows}, {"192.0.2.1", uaSafariIPhone}, {"192.0.2.2", uaSafariIPhone},
			} {
				for range 100 {
					w.RecordActivity(store.AuditEvent{
						Time: t0, Kind: "session", Outcome: store.OutcomeAccepted, SessionID: "s1",
						ClientIP: client.ip, UserAgent: client.ua, Status: 200,
					})
				}
			}
			flush(t, w)
			got := sink.events()
			if len(got) != tc.want {
				t.Fatalf("%d records for 300 requests from 3 clients, want %d", len(got), tc.want)
			}
			wantReason := ReasonNewClient
			if tc.mode == SessionsEveryRequest {
				wantReason = ""
			}
			for _, e := range got {
				if e.Reason != wantReason || e.Outcome != store.OutcomeAccepted || e.Count > 1 {
					t.Errorf("record %+v; want accepted with reason %q", e, wantReason)
				}
			}
		})
	}
}

// TestRecordActivityRetriesDropped: a first request whose record could not
// be queued is not remembered, so the next one is recorded.
func TestRecordActivityRetriesDropped(t *testing.T) {
	w, sink := stall(t, Options{QueueSize: 1, EnqueueTimeout: time.Millisecond})
	ev := store.AuditEvent{Kind: "session", Outcome: store.OutcomeAccepted, SessionID: "s1", ClientIP: "192.0.2.1"}
	w.RecordActivity(ev)
	if w.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", w.Dropped())
	}
	close(sink.hold)
	flush(t, w)
	w.RecordActivity(ev)
	w.RecordActivity(ev)
	closeWriter(t, w)
	var n int
	for _, e := range sink.events() {
		if e.SessionID == "s1" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d activity records, want 1", n)
	}
}

func TestClientMemoryBounded(t *testing.T) {
	const capacity = 1024
	m := newClientMemory(capacity)
	k := m.key("s", "192.0.2.1", "ua")
	if !m.add(k) || m.add(k) {
		t.Fatal("a key is new once")
	}
	if m.key("s", "192.0.2.1", "ua") != k || m.key("s", "192.0.2.1", "ub") == k || m.key("s2", "192.0.2.1", "ua") == k {
		t.Fatal("keys do not tell pairs apart")
	}
	// A pair in use stays remembered however many others come and go.
	var news int
	for i := range 10000 {
		if m.add(m.key(fmt.Sprint("s", i), "192.0.2.1", "ua")) {
			news++
		}
		if i%16 == 0 && m.add(k) {
			t.Fatalf("the pair in use was forgotten after %d others", i)
		}
	}
	if news != 10000 {
		t.Errorf("%d of 10000 distinct pairs new", news)
	}
	var size int
	for i := range m.shards {
		size += len(m.shards[i].cur) + len(m.shards[i].old)
	}
	if size > 2*capacity {
		t.Errorf("memory holds %d keys, bound %d", size, 2*capacity)
	}
}

func BenchmarkRecordActivity(b *testing.B) {
	w := NewWriter(&countSink{}, Options{}, nil, nil)
	defer w.Close(context.Background())
	var i atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := store.AuditEvent{Kind: "session", Outcome: store.OutcomeAccepted, SessionID: fmt.Sprint("s", i.Add(1)), ClientIP: "192.0.2.1", UserAgent: uaChromeWindows}
		for pb.Next() {
			w.RecordActivity(e)
		}
	})
}
