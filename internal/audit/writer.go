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
	// burst the gateway absorbs while the store is slow. Default 16384.
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
	// negative means drop at once.
	EnqueueTimeout time.Duration
}

// Defaults for Options.
const (
	DefaultQueueSize      = 16384
	DefaultBatchSize      = 512
	DefaultFlushInterval  = 20 * time.Millisecond
	DefaultEnqueueTimeout = 5 * time.Millisecond
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
	return o
}

// logEvery rate-limits the writer's warnings: under overload or a dead
// store every event or batch would otherwise produce a line, and the log
// would become the next bottleneck.
const logEvery = time.Second

// Writer is an audit trail that never makes a request wait on the store.
// Record queues; one goroutine parses user agents, batches and writes.
// When the queue is full the event is dropped and counted, because an
// audit trail that can stall the gateway is an outage waiting to happen.
type Writer struct {
	sink Sink
	opts Options
	ua   *UAParser
	log  *zap.Logger

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

	dropped     atomic.Uint64
	failed      atomic.Uint64
	written     atomic.Uint64
	lastDropLog atomic.Int64

	// Touched only by the writer goroutine.
	batch        []store.AuditEvent
	lastFailLog  time.Time
	unloggedLost uint64
	unloggedErr  error
}

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
		queue:      make(chan store.AuditEvent, opts.QueueSize),
		flushReq:   make(chan chan struct{}),
		done:       make(chan struct{}),
		sinkCtx:    ctx,
		cancelSink: cancel,
		batch:      make([]store.AuditEvent, 0, opts.BatchSize),
	}
	go w.run()
	return w
}

// Record queues e for writing. It waits at most EnqueueTimeout for room;
// after that, or once Close has begun, e is dropped and counted.
func (w *Writer) Record(e store.AuditEvent) {
	if len(e.UserAgent) > MaxUALen {
		// Clone so the queue does not pin the whole oversized header.
		e.UserAgent = strings.Clone(TruncateUA(e.UserAgent))
	}
	// TryRLock fails only while Close holds or waits for the lock, and
	// then the event would be refused anyway; blocking here would add
	// Close's wait to a request.
	if !w.mu.TryRLock() {
		w.drop("writer closed")
		return
	}
	if w.closed {
		w.mu.RUnlock()
		w.drop("writer closed")
		return
	}
	select {
	case w.queue <- e:
		w.mu.RUnlock()
		return
	default:
	}
	if w.opts.EnqueueTimeout > 0 {
		t := time.NewTimer(w.opts.EnqueueTimeout)
		select {
		case w.queue <- e:
			t.Stop()
			w.mu.RUnlock()
			return
		case <-t.C:
		}
	}
	w.mu.RUnlock()
	w.drop("queue full")
}

func (w *Writer) drop(reason string) {
	n := w.dropped.Add(1)
	now := time.Now().UnixNano()
	last := w.lastDropLog.Load()
	if now-last >= int64(logEvery) && w.lastDropLog.CompareAndSwap(last, now) {
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

// Close stops accepting events, hands everything queued to the sink and
// stops the writer goroutine. If ctx ends first, the sink call in progress
// is cancelled, whatever is still queued is counted as failed, and Close
// returns ctx's error without waiting further. Close may be called more
// than once; later calls wait for the same shutdown.
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

// Dropped counts events refused by Record: queue full, or Record after
// Close.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Failed counts events lost because the sink returned an error (or was
// abandoned by Close).
func (w *Writer) Failed() uint64 { return w.failed.Load() }

// Written counts events the sink accepted.
func (w *Writer) Written() uint64 { return w.written.Load() }

// QueueDepth is how many events wait in the queue for the writer goroutine
// (not counting the batch it is filling or writing).
func (w *Writer) QueueDepth() int { return len(w.queue) }

func (w *Writer) run() {
	defer close(w.done)
	timer := time.NewTimer(w.opts.FlushInterval)
	timer.Stop()
	defer timer.Stop()
	// timerC is nil while the batch is empty so an idle writer never wakes.
	var timerC <-chan time.Time

	for {
		select {
		case e, ok := <-w.queue:
			if !ok {
				w.write()
				w.logFailures(true)
				return
			}
			if w.add(e) {
				timer.Stop()
				timerC = nil
			} else if len(w.batch) == 1 {
				timer.Reset(w.opts.FlushInterval)
				timerC = timer.C
			}
		case <-timerC:
			timerC = nil
			w.write()
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
			w.write()
			timer.Stop()
			timerC = nil
			close(req)
		}
	}
}

// add enriches e and appends it to the batch, writing the batch when full;
// it reports whether it wrote.
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

func (w *Writer) add(e store.AuditEvent) bool {
	if !e.StatusUpdate {
		w.Describe(&e)
	}
	w.batch = append(w.batch, e)
	if len(w.batch) >= w.opts.BatchSize {
		w.write()
		return true
	}
	return false
}

func (w *Writer) write() {
	n := len(w.batch)
	if n == 0 {
		return
	}
	// Rows are records: a status filled in on an earlier one is not a row.
	for i := range w.batch {
		if w.batch[i].StatusUpdate {
			n--
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
		zap.Uint64("failed_total", w.failed.Load()),
		zap.Error(w.unloggedErr))
	w.lastFailLog = now
	w.unloggedLost = 0
	w.unloggedErr = nil
}
