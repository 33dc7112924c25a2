package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// AuditStats is what the audit writer counts; *audit.Writer is one.
type AuditStats interface {
	// QueueDepth is how many records wait for the writer goroutine.
	QueueDepth() int
	// Written counts records the store accepted, Dropped records refused
	// because the queue was full (or the writer closed), Failed records
	// lost because the store returned an error.
	Written() uint64
	Dropped() uint64
	Failed() uint64
}

// aggregator is an AuditStats that folds floods of identical refusals into
// one record with a count; caddy_latchkey_audit_rows_aggregated_total is
// exported only for a writer that does.
type aggregator interface {
	Aggregated() uint64
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, nil, nil)
}

// auditCollector reads the writer's counters at scrape time.
type auditCollector struct {
	w                                          AuditStats
	depth, written, dropped, failed, aggregate *prometheus.Desc
}

// NewAuditCollector exposes w's counters: caddy_latchkey_audit_queue_depth
// and caddy_latchkey_audit_rows_{written,dropped,failed}_total (and
// _aggregated_total if w aggregates).
func NewAuditCollector(w AuditStats) prometheus.Collector {
	c := &auditCollector{
		w:       w,
		depth:   desc("audit_queue_depth", "Audit records waiting in the writer's queue."),
		written: desc("audit_rows_written_total", "Audit records the writer handed to the store and the store accepted."),
		dropped: desc("audit_rows_dropped_total", "Audit records dropped because the writer's queue stayed full (or the writer was closing)."),
		failed:  desc("audit_rows_failed_total", "Audit records lost because the store refused their batch."),
	}
	if _, ok := w.(aggregator); ok {
		c.aggregate = desc("audit_rows_aggregated_total", "Audit records (refusals, uses of an unlimited link) folded into an earlier identical record's count instead of being written on their own.")
	}
	return c
}

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.written
	ch <- c.dropped
	ch <- c.failed
	if c.aggregate != nil {
		ch <- c.aggregate
	}
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(c.w.QueueDepth()))
	ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(c.w.Written()))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(c.w.Dropped()))
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(c.w.Failed()))
	if c.aggregate != nil {
		ch <- prometheus.MustNewConstMetric(c.aggregate, prometheus.CounterValue, float64(c.w.(aggregator).Aggregated()))
	}
}

// outboxCollector reads the mail worker's last count of queued mail.
type outboxCollector struct {
	depth func() (int, bool)
	desc  *prometheus.Desc
}

// NewOutboxCollector exposes caddy_latchkey_mail_outbox_depth from depth,
// which reports the queued mails as of the worker's last count, and false
// until there was one (the series is then left out).
func NewOutboxCollector(depth func() (int, bool)) prometheus.Collector {
	return &outboxCollector{depth: depth, desc: desc("mail_outbox_depth",
		"Mails queued in the store's outbox (waiting to be sent or retried), as of the mail worker's last count; shared by every gateway on the store.")}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	if n, ok := c.depth(); ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
	}
}

// RegisterReplacing registers c on reg; a collector of the same series
// already there is replaced, so that the newest reader wins.
func RegisterReplacing(reg prometheus.Registerer, c prometheus.Collector) error {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		reg.Unregister(are.ExistingCollector)
		err = reg.Register(c)
	}
	return err
}
