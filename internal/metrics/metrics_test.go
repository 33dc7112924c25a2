package metrics_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/latchkeyhq/latchkey/internal/metrics"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/store/sqlite"
)

func newRegistered(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestAttemptsRefusalsConsumptions(t *testing.T) {
	m, reg := newRegistered(t)
	m.Attempt("ticket", metrics.OutcomeAccepted, "claimed", 200, 3*time.Millisecond)
	m.Attempt("ticket", metrics.OutcomeRefused, "bad_password", 403, time.Millisecond)
	m.Attempt("ticket", metrics.OutcomeRefused, "bad_password", 403, time.Millisecond)
	m.Attempt("session", metrics.OutcomeRefused, "missing", 401, time.Millisecond)
	m.Consumed("ticket")

	want := `
# HELP caddy_latchkey_attempts_total Credential attempts by kind and outcome (accepted or refused): one per request, although the audit trail folds floods of refusals and repeated session requests into fewer records.
# TYPE caddy_latchkey_attempts_total counter
caddy_latchkey_attempts_total{kind="session",outcome="refused"} 1
caddy_latchkey_attempts_total{kind="ticket",outcome="accepted"} 1
caddy_latchkey_attempts_total{kind="ticket",outcome="refused"} 2
# HELP caddy_latchkey_refusals_total Refused attempts, by credential kind and the reason the audit trail records.
# TYPE caddy_latchkey_refusals_total counter
caddy_latchkey_refusals_total{kind="session",reason="missing"} 1
caddy_latchkey_refusals_total{kind="ticket",reason="bad_password"} 2
# HELP caddy_latchkey_consumptions_total Uses taken from limited credentials: link uses, invite redemptions, tickets stamped used.
# TYPE caddy_latchkey_consumptions_total counter
caddy_latchkey_consumptions_total{kind="ticket"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"caddy_latchkey_attempts_total", "caddy_latchkey_refusals_total", "caddy_latchkey_consumptions_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "caddy_latchkey_gate_duration_seconds"); err != nil || n != 2 {
		t.Errorf("gate duration series = %d, %v; want 2 (session, ticket)", n, err)
	}
}

// Registering on a registry that already has the collectors adopts them:
// both record into the series the registry serves.
func TestRegisterTwiceAdopts(t *testing.T) {
	m1, reg := newRegistered(t)
	m2 := metrics.New()
	if err := m2.Register(reg); err != nil {
		t.Fatalf("second Register: %v", err)
	}
	m1.Consumed("link")
	m2.Consumed("link")
	want := `
# HELP caddy_latchkey_consumptions_total Uses taken from limited credentials: link uses, invite redemptions, tickets stamped used.
# TYPE caddy_latchkey_consumptions_total counter
caddy_latchkey_consumptions_total{kind="link"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "caddy_latchkey_consumptions_total"); err != nil {
		t.Error(err)
	}
}

// Past MaxLabelValues, new label values are counted as "other".
func TestLabelValuesBounded(t *testing.T) {
	m, reg := newRegistered(t)
	for i := range metrics.MaxLabelValues + 50 {
		m.Consumed("k" + strconv.Itoa(i))
	}
	n, err := testutil.GatherAndCount(reg, "caddy_latchkey_consumptions_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != metrics.MaxLabelValues+1 {
		t.Errorf("series = %d, want %d", n, metrics.MaxLabelValues+1)
	}
}

func TestRecordingAllocatesNothing(t *testing.T) {
	m, _ := newRegistered(t)
	m.Attempt("session", metrics.OutcomeAccepted, "", 200, time.Millisecond)
	m.Attempt("session", metrics.OutcomeRefused, "expired", 401, time.Millisecond)
	m.Consumed("link")
	kind, reason := "session", "expired" // not constants, as in the gate
	allocs := testing.AllocsPerRun(1000, func() {
		m.Attempt(kind, metrics.OutcomeAccepted, "", 200, time.Millisecond)
		m.Attempt(kind, metrics.OutcomeRefused, reason, 401, time.Millisecond)
		m.Consumed("link")
	})
	if allocs != 0 {
		t.Errorf("recording allocates %v times per run", allocs)
	}
}

type fakeWriter struct{ depth, written, dropped, failed uint64 }

func (f *fakeWriter) QueueDepth() int { return int(f.depth) }
func (f *fakeWriter) Written() uint64 { return f.written }
func (f *fakeWriter) Dropped() uint64 { return f.dropped }
func (f *fakeWriter) Failed() uint64  { return f.failed }

type aggregatingWriter struct {
	fakeWriter
	aggregated uint64
}

func (f *aggregatingWriter) Aggregated() uint64 { return f.aggregated }

func TestAuditCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	w := &fakeWriter{depth: 3, written: 10, dropped: 2, failed: 1}
	if err := metrics.RegisterReplacing(reg, metrics.NewAuditCollector(w)); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP caddy_latchkey_audit_queue_depth Audit records waiting in the writer's queue.
# TYPE caddy_latchkey_audit_queue_depth gauge
caddy_latchkey_audit_queue_depth 3
# HELP caddy_latchkey_audit_rows_dropped_total Audit records dropped because the writer's queue stayed full (or the writer was closing).
# TYPE caddy_latchkey_audit_rows_dropped_total counter
caddy_latchkey_audit_rows_dropped_total 2
# HELP caddy_latchkey_audit_rows_failed_total Audit records lost because the store refused their batch.
# TYPE caddy_latchkey_audit_rows_failed_total counter
caddy_latchkey_audit_rows_failed_total 1
# HELP caddy_latchkey_audit_rows_written_total Audit records the writer handed to the store and the store accepted.
# TYPE caddy_latchkey_audit_rows_written_total counter
caddy_latchkey_audit_rows_written_total 10
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// No aggregation, no series for it.
	if n, _ := testutil.GatherAndCount(reg, "caddy_latchkey_audit_rows_aggregated_total"); n != 0 {
		t.Errorf("aggregated series without aggregation: %d", n)
	}

	// A second writer on the same registry (a second app in one config)
	// replaces the first: the newest reader wins, and nothing panics.
	if err := metrics.RegisterReplacing(reg, metrics.NewAuditCollector(&fakeWriter{written: 7})); err != nil {
		t.Fatal(err)
	}
	if got := gatherValue(t, reg, "caddy_latchkey_audit_rows_written_total"); got != 7 {
		t.Errorf("written after replacing = %v, want 7", got)
	}

	// A writer that aggregates gets the series for it.
	reg = prometheus.NewPedanticRegistry()
	w2 := &aggregatingWriter{fakeWriter: fakeWriter{written: 7}, aggregated: 5}
	if err := metrics.RegisterReplacing(reg, metrics.NewAuditCollector(w2)); err != nil {
		t.Fatal(err)
	}
	want2 := `
# HELP caddy_latchkey_audit_rows_aggregated_total Audit records (refusals, uses of an unlimited link) folded into an earlier identical record's count instead of being written on their own.
# TYPE caddy_latchkey_audit_rows_aggregated_total counter
caddy_latchkey_audit_rows_aggregated_total 5
# HELP caddy_latchkey_audit_rows_written_total Audit records the writer handed to the store and the store accepted.
# TYPE caddy_latchkey_audit_rows_written_total counter
caddy_latchkey_audit_rows_written_total 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want2),
		"caddy_latchkey_audit_rows_aggregated_total", "caddy_latchkey_audit_rows_written_total"); err != nil {
		t.Error(err)
	}
}

func gatherValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no single series %s", name)
	return 0
}

func TestOutboxCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	n, ok := 0, false
	if err := metrics.RegisterReplacing(reg, metrics.NewOutboxCollector(func() (int, bool) { return n, ok })); err != nil {
		t.Fatal(err)
	}
	if c, _ := testutil.GatherAndCount(reg, "caddy_latchkey_mail_outbox_depth"); c != 0 {
		t.Errorf("depth reported before the worker counted: %d series", c)
	}
	n, ok = 4, true
	want := `
# HELP caddy_latchkey_mail_outbox_depth Mails queued in the store's outbox (waiting to be sent or retried), as of the mail worker's last count; shared by every gateway on the store.
# TYPE caddy_latchkey_mail_outbox_depth gauge
caddy_latchkey_mail_outbox_depth 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// waitingStore is a store that can wait for changes.
type waitingStore struct {
	store.Store
	waited int
}

func (w *waitingStore) WaitChange(context.Context) error { w.waited++; return nil }

func TestTimedStore(t *testing.T) {
	m, reg := newRegistered(t)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ts := m.Store(st)
	if _, ok := ts.(interface{ WaitChange(context.Context) error }); ok {
		t.Error("the decorator says it can wait for changes, but its store cannot")
	}
	ctx := t.Context()
	if _, err := ts.SessionByTokenHash(ctx, []byte("nope")); err == nil {
		t.Error("unknown session found")
	}
	if _, err := ts.Ticket(ctx, "00000000-0000-0000-0000-000000000000"); err == nil {
		t.Error("unknown ticket found")
	}
	// An untimed call goes straight through.
	u := &store.User{Email: "m@example.com", Active: true}
	if err := ts.CreateUser(ctx, u); err != nil || u.ID == 0 {
		t.Fatalf("CreateUser through the decorator: %v", err)
	}
	count := func(op string) uint64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "caddy_latchkey_store_duration_seconds" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() == "op" && l.GetValue() == op {
						return mt.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		t.Fatalf("no series for op %q", op)
		return 0
	}
	if n := count(metrics.OpSessionLookup); n != 1 {
		t.Errorf("session_lookup observed %d times, want 1", n)
	}
	if n := count(metrics.OpTicketLookup); n != 1 {
		t.Errorf("ticket_lookup observed %d times, want 1", n)
	}
	if n := count(metrics.OpLinkUse); n != 0 {
		t.Errorf("link_use observed %d times, want 0", n)
	}

	ws := &waitingStore{Store: st}
	tw := m.Store(ws)
	w, ok := tw.(interface{ WaitChange(context.Context) error })
	if !ok {
		t.Fatal("the decorator hides the store's WaitChange")
	}
	if err := w.WaitChange(ctx); err != nil || ws.waited != 1 {
		t.Errorf("WaitChange not forwarded: %v, %d", err, ws.waited)
	}
}
