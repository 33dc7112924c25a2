package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Sink is where batches go; store.Store is one. The writer reuses the
// slice it passes once WriteAudit returns, so a Sink must not keep it.
type Sink interface {
	WriteAudit(ctx context.Context, events []store.AuditEvent) error
}

// Options tune a Writer. Zero values take the defaults.
type Options struct {
	// QueueSize is how many events may wait for the writer; it is the
	// burst the gateway absorbs while the store is slow (refusals and link
	// uses beyond it are counted in the overflow). Default 2048.
	QueueSize int
	// BatchSize caps the events per WriteAudit call, which bounds the size
	// of one store transaction. Default 512.
	BatchSize int
	// FlushInterval is how long an event may wait for its batch to fill,
	// which bounds how stale the audit view is when traffic is light.
	// Default 20ms.
	FlushInterval time.Duration
	// EnqueueTimeout is how long Record waits for room in a full queue
	// before dropping the event: a short wait rides out a brief stall in the
	// writer without making clients pay for a long one. Default 5ms;
	// negative means drop at once. A refusal does not wait: it is counted
	// in the overflow (see OverflowSize) unless that is full too.
	EnqueueTimeout time.Duration
	// UseTimeout is how long the use of an unlimited link waits for room
	// when both the queue and the overflow are full, before it is dropped
	// and logged: long, as it is a credential's use, but bounded so that a
	// writer stuck on a dead store cannot hold requests for ever. Default
	// 10s.
	UseTimeout time.Duration
	// AggregateWindow: refusals with the same client IP, reason, kind and
	// host within this long of the first are one record whose Count is how
	// many there were, written when the window ends; so are the uses of an
	// unlimited link with the same client and upstream status. Default 1s;
	// negative writes every one on its own.
	AggregateWindow time.Duration
	// MaxAggregates bounds the refusals held open for aggregation at once;
	// a refusal that would open one more is written on its own. Default
	// 4096.
	MaxAggregates int
	// OverflowSize bounds the distinct refusals (client IP, reason, kind,
	// host) counted in memory while the queue is full; they are written as
	// aggregated records once the writer catches up. Default 4096.
	OverflowSize int
	// Sessions is how RecordActivity audits accepted session requests:
	// SessionsActivity (the default) or SessionsEveryRequest.
	Sessions string
	// ActivityMemory is how many (session, client) pairs the activity mode
	// remembers as recorded. Default DefaultActivityMemory.
	ActivityMemory int
	// Now is the writer's clock, which decides when an aggregate's window
	// has ended. Default time.Now.
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultQueueSize       = 2048
	DefaultBatchSize       = 512
	DefaultFlushInterval   = 20 * time.Millisecond
	DefaultEnqueueTimeout  = 5 * time.Millisecond
	DefaultUseTimeout      = 10 * time.Second
	DefaultAggregateWindow = time.Second
	DefaultMaxAggregates   = 4096
	DefaultOverflowSize    = 4096
)

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.EnqueueTimeout == 0 {
		o.EnqueueTimeout = DefaultEnqueueTimeout
	}
	if o.UseTimeout == 0 {
		o.UseTimeout = DefaultUseTimeout
	}
	if o.AggregateWindow == 0 {
		o.AggregateWindow = DefaultAggregateWindow
	}
	if o.MaxAggregates <= 0 {
		o.MaxAggregates = DefaultMaxAggregates
	}
	if o.OverflowSize <= 0 {
		o.OverflowSize = DefaultOverflowSize
	}
	if o.Sessions == "" {
		o.Sessions = SessionsActivity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// ValidSessions reports whether s is a mode Options.Sessions knows ("" is
// the default).
func ValidSessions(s string) bool {
	return s == "" || s == SessionsActivity || s == SessionsEveryRequest
}

// logEvery rate-limits the writer's warnings: under overload or a dead
// store every event or batch would otherwise produce a line, and the log
// would become the next bottleneck.
const logEvery = time.Second

// Writer is an audit trail that never makes a request wait on the store.
// Record queues; one goroutine parses user agents, batches and writes.
//
// It keeps the trail small without losing count: a flood of identical
// refusals (same client IP, reason, kind and host within AggregateWindow)
// is one record with a Count, so are the uses of one unlimited link by one
// client with one upstream status, and a session's accepted requests are
// recorded as its activity (RecordActivity). When the queue is full those
// are counted in memory (the overflow) and written, aggregated, once the
// writer catches up; a link use that finds the overflow full too waits
// for room (at most UseTimeout), because it is a use of a credential. Any
// other event waits at most EnqueueTimeout and is then dropped and
// counted, because an audit trail that can stall the gateway is an outage
// waiting to happen. The record of a consumed limited credential or a
// login never comes here: the store writes it with the use.
type Writer struct {
	sink Sink
	opts Options
	ua   *UAParser
	log  *zap.Logger
	now  func() time.Time
	// seen remembers the (session, client) pairs recorded; nil in
	// every_request mode.
	seen *clientMemory

	// mu is held shared by Record while it sends and exclusively by Close
	// while it closes queue, so that no send can race the close.
	mu     sync.RWMutex
	closed bool
	queue  chan store.AuditEvent

	flushReq  chan chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// sinkCtx is cancelled when Close gives up waiting, so that a stuck
	// store call is abandoned instead of outliving the Writer.
	sinkCtx    context.Context
	cancelSink context.CancelFunc

	// overflow holds refusals that found the queue full, folded by
	// aggKey, until the writer goroutine takes them (spilled says there
	// are some).
	ovMu     sync.Mutex
	overflow map[aggKey]*store.AuditEvent
	spilled  atomic.Bool
	// wake tells an idle writer goroutine that the overflow has refusals.
	wake      chan struct{}
	lastOvLog atomic.Int64

	dropped     atomic.Uint64
	failed      atomic.Uint64
	written     atomic.Uint64
	aggregated  atomic.Uint64
	lastDropLog atomic.Int64

	// Touched only by the writer goroutine.
	batch []store.AuditEvent
	// open are the aggregates whose window has not ended, by key; fifo is
	// them in the order they were opened, which is the order they are due
	// (an entry already written is marked done and skipped).
	open         map[aggKey]*aggregate
	fifo         []*aggregate
	ovSpare      map[aggKey]*store.AuditEvent
	lastPull     time.Time
	lastFailLog  time.Time
	unloggedLost uint64
	unloggedAtt  uint64
	unloggedErr  error
}

// aggKey is what makes records identical for aggregation. For refusals,
// the path, the user agent and the credential are not in it: an attacker
// varies those for free, and a flood must not cost a row a request because
// of it. Uses of an unlimited link are one record per link, client
// (address and user agent) and upstream status.
type aggKey struct {
	ip, reason, kind, host string
	link, ua               string
	status                 int
}

func keyOf(e *store.AuditEvent) aggKey {
	k := aggKey{ip: e.ClientIP, reason: e.Reason, kind: e.Kind, host: e.Host}
	if e.CountsLinkUse {
		k.link, k.ua, k.status = e.CredentialID, e.UserAgent, e.Status
	}
	return k
}

// aggregate is one open record: the first refusal of its window, counting
// the identical ones since.
type aggregate struct {
	key  aggKey
	ev   store.AuditEvent
	due  time.Time // by the writer's clock
	done bool
}

// aggregatable: only a new record of a refusal or of an unlimited link's
// use is folded into another. Other accepted requests and status updates
// never are (and the records of consumed limited credentials do not come
// through the writer at all).
func aggregatable(e *store.AuditEvent) bool {
	return (e.Outcome == store.OutcomeRefused || e.CountsLinkUse && e.CredentialID != "") && !e.StatusUpdate && e.ID == 0
}

// overflowPullEvery bounds how long refusals stay in the overflow while the
// queue refills as fast as the writer empties it.
const overflowPullEvery = time.Second

// NewWriter starts the writer goroutine; Close stops it. ua may be nil (a
// parser with the default cache size is made) and so may logger.
func NewWriter(sink Sink, opts Options, ua *UAParser, logger *zap.Logger) *Writer {
	opts = opts.withDefaults()
	if ua == nil {
		ua = NewUAParser(0)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{
		sink:       sink,
		opts:       opts,
		ua:         ua,
		log:        logger,
		now:        opts.Now,
		queue:      make(chan store.AuditEvent, opts.QueueSize),
		flushReq:   make(chan chan struct{}),
		done:       make(chan struct{}),
		sinkCtx:    ctx,
		cancelSink: cancel,
		overflow:   make(map[aggKey]*store.AuditEvent),
		wake:       make(chan struct{}, 1),
		batch:      make([]store.AuditEvent, 0, opts.BatchSize),
		open:       make(map[aggKey]*aggregate),
	}
	if opts.Sessions != SessionsEveryRequest {
		w.seen = newClientMemory(opts.ActivityMemory)
	}
	go w.run()
	return w
}

// Record queues e for writing. A refusal that finds the queue full is
// counted in the overflow; any other event waits at most EnqueueTimeout
// for room. After that, or once Close has begun, e is dropped and counted.
func (w *Writer) Record(e store.AuditEvent) { w.enqueue(e) }

// RecordActivity records e, an accepted request of session e.SessionID.
// In the activity mode (the default) only the session's first request from
// each client — e.ClientIP and e.UserAgent — that this Writer has not
// recorded yet becomes a record, with reason ReasonNewClient; any other
// costs a hash and a map look-up, and writes nothing (the session's
// last-seen time tells how recently it was used). In every_request mode it
// is Record.
func (w *Writer) RecordActivity(e store.AuditEvent) {
	if w.seen == nil {
		w.enqueue(e)
		return
	}
	k := w.seen.key(e.SessionID, e.ClientIP, e.UserAgent)
	if !w.seen.add(k) {
		return
	}
	if e.Reason == "" {
		e.Reason = ReasonNewClient
	}
	if !w.enqueue(e) {
		// Not recorded after all: the pair's next request tries again.
		w.seen.forget(k)
	}
}

// enqueue hands e to the writer goroutine (through the queue or the
// overflow) and reports whether it did; otherwise e was dropped.
func (w *Writer) enqueue(e store.AuditEvent) bool {
	if len(e.UserAgent) > MaxUALen {
		// Clone so the queue does not pin the whole oversized header.
		e.UserAgent = strings.Clone(TruncateUA(e.UserAgent))
	}
	// TryRLock fails only while Close holds or waits for the lock, and
	// then the event would be refused anyway; blocking here would add
	// Close's wait to a request.
	if !w.mu.TryRLock() {
		w.drop("writer closed")
		return false
	}
	reason := w.send(e)
	w.mu.RUnlock()
	if reason != "" {
		w.drop(reason)
		if e.CountsLinkUse {
			w.log.Error("use of an unlimited link not recorded: the audit writer made no room",
				zap.String("reason", reason), zap.String("jti", e.CredentialID), zap.String("client_ip", e.ClientIP))
		}
		return false
	}
	return true
}

// send is enqueue's part under the read lock; it returns why e was not
// taken, "" when it was.
func (w *Writer) send(e store.AuditEvent) string {
	if w.closed {
		return "writer closed"
	}
	select {
	case w.queue <- e:
		return ""
	default:
	}
	if aggregatable(&e) && w.spill(&e) {
		return ""
	}
	wait := w.opts.EnqueueTimeout
	if e.CountsLinkUse {
		wait = w.opts.UseTimeout
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case w.queue <- e:
			return ""
		case <-t.C:
		}
	}
	return "queue full"
}

// spill counts a refusal or link use that found the queue full in the
// overflow, folded into an identical one there. It reports false when the
// overflow is full of other records.
func (w *Writer) spill(e *store.AuditEvent) bool {
	k := keyOf(e)
	n := max(e.Count, 1)
	w.ovMu.Lock()
	o := w.overflow[k]
	took := true
	switch {
	case o != nil:
		o.Count += n
	case len(w.overflow) < w.opts.OverflowSize:
		c := *e
		c.Count = n
		w.overflow[k] = &c
		w.spilled.Store(true)
	default:
		took = false
	}
	size := len(w.overflow)
	w.ovMu.Unlock()
	if !took {
		return false
	}
	if o != nil {
		w.aggregated.Add(1)
	} else {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	if w.rateOK(&w.lastOvLog) {
		w.log.Warn("audit queue full: refusals are counted in memory until the writer catches up",
			zap.Int("distinct_refusals", size))
	}
	return true
}

// rateOK reports whether a warning rate-limited by last may be logged now,
// and if so takes the turn.
func (w *Writer) rateOK(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	l := last.Load()
	return now-l >= int64(logEvery) && last.CompareAndSwap(l, now)
}

func (w *Writer) drop(reason string) {
	n := w.dropped.Add(1)
	if w.rateOK(&w.lastDropLog) {
		w.log.Warn("audit event dropped",
			zap.String("reason", reason),
			zap.Uint64("dropped_total", n))
	}
}

// Flush returns once every event whose Record returned before the call has
// been handed to the sink (written or failed), or when ctx ends. It lets
// tests and shutdown paths see a complete trail without waiting for
// FlushInterval.
func (w *Writer) Flush(ctx context.Context) error {
	req := make(chan struct{})
	select {
	case w.flushReq <- req:
	case <-w.done:
		// The goroutine has drained the queue on its way out.
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting events, hands everything queued, held for
// aggregation or counted in the overflow to the sink and stops the writer
// goroutine. If ctx ends first, the sink call in progress is cancelled,
// whatever is still queued is counted as failed, and Close returns ctx's
// error without waiting further. Close may be called more than once; later
// calls wait for the same shutdown.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.queue)
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		w.cancelSink()
		return nil
	case <-ctx.Done():
		w.cancelSink()
		return ctx.Err()
	}
}

// Dropped counts events refused by Record: queue (and, for refusals,
// overflow) full, or Record after Close.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Failed counts records lost because the sink returned an error (or was
// abandoned by Close); an aggregated record counts once.
func (w *Writer) Failed() uint64 { return w.failed.Load() }

// Written counts records the sink accepted; an aggregated record counts
// once, however many refusals it stands for.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Aggregated counts refusals and link uses folded into an earlier identical one's Count
// instead of being written on their own. Refusals recorded are Written
// (their rows' counts add up to them) plus Aggregated, less what failed.
func (w *Writer) Aggregated() uint64 { return w.aggregated.Load() }

// QueueDepth is how many events wait in the queue for the writer goroutine
// (not counting the batch it is filling or writing, nor the aggregates and
// the overflow it holds).
func (w *Writer) QueueDepth() int { return len(w.queue) }

func (w *Writer) run() {
	defer close(w.done)
	timer := time.NewTimer(w.opts.FlushInterval)
	timer.Stop()
	defer timer.Stop()
	aggTimer := time.NewTimer(time.Hour)
	aggTimer.Stop()
	defer aggTimer.Stop()
	// timerC is nil while the batch is empty, and aggC while no aggregate
	// is open, so an idle writer never wakes.
	var timerC, aggC <-chan time.Time

	for {
		select {
		case e, ok := <-w.queue:
			if !ok {
				w.pullOverflow()
				w.closeAggregates(time.Time{})
				w.write()
				w.logFailures(true)
				return
			}
			w.add(e)
		case <-timerC:
			timerC = nil
			w.write()
		case <-aggC:
			aggC = nil
			w.closeAggregates(w.now())
		case <-w.wake:
			// Handled below.
		case req := <-w.flushReq:
			// Everything recorded before Flush was called is in the queue
			// by now, at the front; take exactly that much so a steady
			// stream of new events cannot keep Flush waiting.
			for n := len(w.queue); n > 0; n-- {
				e, ok := <-w.queue
				if !ok {
					break
				}
				w.add(e)
			}
			w.pullOverflow()
			w.closeAggregates(time.Time{})
			w.write()
			close(req)
		}
		if w.spilled.Load() {
			if now := w.now(); len(w.queue) == 0 || now.Sub(w.lastPull) >= overflowPullEvery {
				w.pullOverflow()
				w.lastPull = now
			}
		}
		switch {
		case len(w.batch) == 0 && timerC != nil:
			timer.Stop()
			timerC = nil
		case len(w.batch) > 0 && timerC == nil:
			timer.Reset(w.opts.FlushInterval)
			timerC = timer.C
		}
		if aggC == nil && len(w.fifo) > 0 {
			aggTimer.Reset(max(w.fifo[0].due.Sub(w.now()), 0))
			aggC = aggTimer.C
		}
	}
}

// Describe fills in the parsed user agent of an event that is written
// outside the writer: the record of a consumed credential goes into the
// store in the same transaction as the use.
func (w *Writer) Describe(e *store.AuditEvent) {
	e.UserAgent = TruncateUA(e.UserAgent)
	u := w.ua.Parse(e.UserAgent)
	e.UABrowser, e.UAVersion, e.UAOS, e.UADevice, e.UABot = u.Browser, u.Version, u.OS, u.Device, u.Bot
}

// SetStatus queues the upstream's status and the latency of a record the
// store wrote with a consumed credential, so that filling them in costs no
// transaction of its own: it rides in the next batch.
func (w *Writer) SetStatus(id int64, status int, latency time.Duration) {
	if id == 0 {
		return
	}
	w.Record(store.AuditEvent{ID: id, Status: status, Latency: latency, StatusUpdate: true})
}

// add takes one event from the queue (or the overflow): a refusal into its
// aggregate, anything else into the batch.
func (w *Writer) add(e store.AuditEvent) {
	if e.StatusUpdate {
		w.appendBatch(e)
		return
	}
	if w.opts.AggregateWindow > 0 && aggregatable(&e) {
		w.aggregate(e)
		return
	}
	w.Describe(&e)
	w.appendBatch(e)
}

// aggregate folds refusal e into the open aggregate of its key when e is
// within the aggregate's window, else writes that aggregate and opens one
// with e. Only the first refusal of an aggregate has its user agent parsed.
func (w *Writer) aggregate(e store.AuditEvent) {
	n := max(e.Count, 1)
	win := w.opts.AggregateWindow
	k := keyOf(&e)
	if a := w.open[k]; a != nil {
		// Concurrent requests reach the queue a little out of order: one
		// stamped just before the first is in the window too.
		if d := e.Time.Sub(a.ev.Time); d < win && d > -win {
			a.ev.Count += n
			w.aggregated.Add(1)
			return
		}
		// Its window is over: it is written, and e starts the next.
		w.closeAggregate(a)
	}
	w.Describe(&e)
	e.Count = n
	if len(w.open) >= w.opts.MaxAggregates {
		w.appendBatch(e)
		return
	}
	a := &aggregate{key: k, ev: e, due: w.now().Add(win)}
	w.open[k] = a
	w.fifo = append(w.fifo, a)
}

// closeAggregate ends a's window: its record goes into the batch.
func (w *Writer) closeAggregate(a *aggregate) {
	delete(w.open, a.key)
	a.done = true
	e := a.ev
	a.ev = store.AuditEvent{} // the fifo may keep a a little longer
	w.appendBatch(e)
}

// closeAggregates writes the aggregates due at now, or all of them when now
// is zero (Flush, Close).
func (w *Writer) closeAggregates(now time.Time) {
	for len(w.fifo) > 0 {
		a := w.fifo[0]
		if !a.done && !now.IsZero() && a.due.After(now) {
			break
		}
		w.fifo[0] = nil
		w.fifo = w.fifo[1:]
		if !a.done {
			w.closeAggregate(a)
		}
	}
	if len(w.fifo) == 0 {
		w.fifo = nil
	}
	w.write()
}

// pullOverflow takes the refusals counted while the queue was full and
// aggregates them like any others.
func (w *Writer) pullOverflow() {
	if !w.spilled.Load() {
		return
	}
	spare := w.ovSpare
	if spare == nil {
		spare = make(map[aggKey]*store.AuditEvent)
	}
	w.ovMu.Lock()
	ov := w.overflow
	w.overflow = spare
	w.spilled.Store(false)
	w.ovMu.Unlock()
	for _, e := range ov {
		w.add(*e)
	}
	clear(ov)
	w.ovSpare = ov
}

// appendBatch adds e to the batch, writing the batch when full.
func (w *Writer) appendBatch(e store.AuditEvent) {
	w.batch = append(w.batch, e)
	if len(w.batch) >= w.opts.BatchSize {
		w.write()
	}
}

func (w *Writer) write() {
	n := len(w.batch)
	if n == 0 {
		return
	}
	// Rows are records: a status filled in on an earlier one is not a row.
	// attempts is what the rows stand for.
	var attempts uint64
	for i := range w.batch {
		if w.batch[i].StatusUpdate {
			n--
		} else {
			attempts += uint64(max(w.batch[i].Count, 1))
		}
	}
	var err error
	if err = w.sinkCtx.Err(); err == nil {
		err = w.sink.WriteAudit(w.sinkCtx, w.batch)
	}
	// Clear before reuse so an idle writer does not pin the last batch's
	// strings.
	clear(w.batch)
	w.batch = w.batch[:0]
	if err == nil {
		w.written.Add(uint64(n))
		return
	}
	w.failed.Add(uint64(n))
	w.unloggedLost += uint64(n)
	w.unloggedAtt += attempts
	w.unloggedErr = err
	w.logFailures(false)
}

// logFailures reports lost batches at most once per logEvery, summing what
// was lost since the previous line; final forces out the remainder at
// shutdown so no loss goes unreported.
func (w *Writer) logFailures(final bool) {
	if w.unloggedLost == 0 {
		return
	}
	now := time.Now()
	if !final && now.Sub(w.lastFailLog) < logEvery {
		return
	}
	msg := "audit write failed, events lost"
	if errors.Is(w.unloggedErr, context.Canceled) && w.sinkCtx.Err() != nil {
		msg = "audit writer closed before the store accepted these events"
	}
	w.log.Error(msg,
		zap.Uint64("events_lost", w.unloggedLost),
		zap.Uint64("attempts_lost", w.unloggedAtt),
		zap.Uint64("failed_total", w.failed.Load()),
		zap.Error(w.unloggedErr))
	w.lastFailLog = now
	w.unloggedLost = 0
	w.unloggedAtt = 0
	w.unloggedErr = nil
}
