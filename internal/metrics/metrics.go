// Package metrics is latchkey's Prometheus metrics: what the gate's pipeline
// decided (attempts, refusals, consumptions, time spent in the gateway), how
// long the credential store took on the request path, and the state of the
// audit writer and the mail outbox. Every series is named caddy_latchkey_….
//
// A Metrics belongs to one loaded config: caddymodule registers it on the
// registry of the caddy.Context the app is provisioned with, which Caddy
// makes anew for every config load and serves at the admin endpoint's
// /metrics (and the metrics handler). A reload thus provisions a new
// Metrics on a new registry while the old config drains on the old one;
// nothing is registered twice, and counters start again from zero, as
// Caddy's own caddy_http_* counters do.
//
// The recording side is allocation-free: label children are resolved once
// per label combination and kept in copy-on-write maps read without a
// lock, and Prometheus counters and histograms are atomic.
package metrics

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Names of the series.
const (
	namespace = "caddy"
	subsystem = "latchkey"
)

// Outcomes of an attempt, as the audit trail names them.
const (
	OutcomeAccepted = "accepted"
	OutcomeRefused  = "refused"
)

// MaxLabelValues bounds the label combinations of each labelled series;
// past it, new ones are counted under the value Other. Kinds and reasons
// are fixed sets in the code, so this is a guard, not a limit one meets.
const MaxLabelValues = 256

// Other stands for a label value past MaxLabelValues.
const Other = "other"

// DurationBuckets are the histogram buckets, in seconds: from 100µs (a
// cached session) to 2.5s (a store under a lock).
var DurationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// Metrics is the collectors of one loaded config. Its methods are safe for
// concurrent use. A nil *Metrics must not be used; callers that may have
// none keep a nil interface instead (gate.Deps.Metrics).
type Metrics struct {
	attempts  *prometheus.CounterVec   // kind, outcome
	refusals  *prometheus.CounterVec   // kind, reason
	consumed  *prometheus.CounterVec   // kind
	gateTime  *prometheus.HistogramVec // kind
	storeTime *prometheus.HistogramVec // op

	attemptC  cache[pair, prometheus.Counter]
	refusalC  cache[pair, prometheus.Counter]
	consumedC cache[string, prometheus.Counter]
	gateC     cache[string, prometheus.Observer]
}

type pair struct{ a, b string }

// New makes the collectors; Register exposes them.
func New() *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "attempts_total",
			Help: "Credential attempts by kind and outcome (accepted or refused): one per request, although the audit trail folds floods of refusals and repeated session requests into fewer records.",
		}, []string{"kind", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "refusals_total",
			Help: "Refused attempts, by credential kind and the reason the audit trail records.",
		}, []string{"kind", "reason"}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "consumptions_total",
			Help: "Uses taken from limited credentials: link uses, invite redemptions, tickets stamped used.",
		}, []string{"kind"}),
		gateTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "gate_duration_seconds",
			Help:    "Time a request spent in the gateway, from its arrival to its audit record, excluding the time the upstream took to answer, by credential kind.",
			Buckets: DurationBuckets,
		}, []string{"kind"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "store_duration_seconds",
			Help:    "Time of the credential store's calls on the request path, by operation.",
			Buckets: DurationBuckets,
		}, []string{"op"}),
	}
	m.attemptC.init(func(k pair) prometheus.Counter { return m.attempts.WithLabelValues(k.a, k.b) },
		func(k pair) pair { return pair{Other, k.b} })
	m.refusalC.init(func(k pair) prometheus.Counter { return m.refusals.WithLabelValues(k.a, k.b) },
		func(pair) pair { return pair{Other, Other} })
	m.consumedC.init(func(k string) prometheus.Counter { return m.consumed.WithLabelValues(k) },
		func(string) string { return Other })
	m.gateC.init(func(k string) prometheus.Observer { return m.gateTime.WithLabelValues(k) },
		func(string) string { return Other })
	return m
}

// Register adds the collectors to reg. A collector reg already holds (the
// same config registering twice) is adopted rather than an error, so that
// both record into the series reg serves.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	var errs []error
	adopt := func(c **prometheus.CounterVec) {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if ex, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					*c = ex
					return
				}
			}
			errs = append(errs, err)
		}
	}
	adoptH := func(c **prometheus.HistogramVec) {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if ex, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
					*c = ex
					return
				}
			}
			errs = append(errs, err)
		}
	}
	adopt(&m.attempts)
	adopt(&m.refusals)
	adopt(&m.consumed)
	adoptH(&m.gateTime)
	adoptH(&m.storeTime)
	return errors.Join(errs...)
}

// Attempt counts one audited attempt as it ends: its kind, its outcome
// (OutcomeAccepted or OutcomeRefused), for a refusal its reason, and d,
// the time it spent in the gateway. status is the response's, unused for
// now.
func (m *Metrics) Attempt(kind, outcome, reason string, status int, d time.Duration) {
	m.attemptC.get(pair{kind, outcome}).Inc()
	if outcome != OutcomeAccepted {
		m.refusalC.get(pair{kind, reason}).Inc()
	}
	m.gateC.get(kind).Observe(d.Seconds())
}

// Consumed counts one use taken from a limited credential of kind.
func (m *Metrics) Consumed(kind string) {
	m.consumedC.get(kind).Inc()
}

// storeOp is the histogram child of one store operation.
func (m *Metrics) storeOp(op string) prometheus.Observer {
	return m.storeTime.WithLabelValues(op)
}

// cache maps label values to their resolved children. Reads take no lock:
// the map is replaced, never changed, when a combination is added.
type cache[K comparable, V any] struct {
	m        atomic.Pointer[map[K]V]
	mu       sync.Mutex
	make     func(K) V
	overflow func(K) K
}

func (c *cache[K, V]) init(mk func(K) V, overflow func(K) K) {
	c.make, c.overflow = mk, overflow
	empty := map[K]V{}
	c.m.Store(&empty)
}

func (c *cache[K, V]) get(k K) V {
	if v, ok := (*c.m.Load())[k]; ok {
		return v
	}
	return c.add(k)
}

func (c *cache[K, V]) add(k K) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if v, ok := old[k]; ok {
		return v
	}
	if len(old) >= MaxLabelValues {
		k = c.overflow(k)
		if v, ok := old[k]; ok {
			return v
		}
	}
	v := c.make(k)
	next := make(map[K]V, len(old)+1)
	for kk, vv := range old {
		next[kk] = vv
	}
	next[k] = v
	c.m.Store(&next)
	return v
}
