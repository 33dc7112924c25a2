package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestStatsPlans: the dashboard's figures are found by an index: the audit
// trail's by time, sessions and mails by site; none reads a table whole,
// and the latest mails come in the index's order, not sorted afterwards.
func TestStatsPlans(t *testing.T) {
	s := openTemp(t)
	now := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	q := store.StatsQuery{Hosts: []string{"a.example", "*.b.example", "::1"}, Since: now.Add(-7 * 24 * time.Hour), Until: now, Step: time.Hour, Outcome: store.OutcomeRefused}
	hist, histArgs := histogramSQL(q)
	top, topArgs := topSQL(q, "client_ip", 5)
	for _, c := range []struct {
		sql   string
		args  []any
		index string
	}{
		{hist, histArgs, "audit_time"},
		{top, topArgs, "audit_time"},
		{countSessionsSQL, []any{"a", 1, 2}, "sessions_"},
		{mailCountsSQL, []any{"a"}, "outbox_site_state"},
		{siteMailsSQL, []any{"a", 10}, "outbox_site_created"},
	} {
		rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+c.sql, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "; ")
		if !strings.Contains(all, "USING INDEX "+c.index) && !strings.Contains(all, "USING COVERING INDEX "+c.index) {
			t.Errorf("%s\ndoes not use %s: %s", c.sql, c.index, all)
		}
		for _, step := range plan {
			if step == "SCAN audit" || step == "SCAN sessions" || step == "SCAN outbox" {
				t.Errorf("%s\nreads a table whole: %s", c.sql, all)
			}
		}
		if c.sql == siteMailsSQL && strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("the latest mails are sorted, not read in order: %s", all)
		}
	}
}
