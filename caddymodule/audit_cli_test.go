package caddymodule_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestAuditQueryAndExport: `audit list` filters by reason, client IP,
// session and site and pages with --before; `audit export` writes every
// record as JSON Lines or CSV (a client's text cannot become a spreadsheet
// formula); the admin API pages with a cursor and streams exports.
func TestAuditQueryAndExport(t *testing.T) {
	r := startAtkRig(t, atkOpts{noSMTP: true})
	now := time.Now()
	var batch []store.AuditEvent
	for i := range 2500 {
		e := store.AuditEvent{Time: now.Add(-time.Duration(i) * time.Millisecond), Kind: "session", Outcome: store.OutcomeRefused,
			Reason: "revoked", Host: r.A.host, Path: fmt.Sprintf("/p%d", i), ClientIP: "198.51.100.9", SessionID: "s-a", UserAgent: "=cmd|' /C calc'!A0"}
		if i%10 == 0 {
			e.Reason, e.ClientIP, e.Host, e.SessionID = "expired", "2001:db8::1", r.B.host, "s-b"
		}
		batch = append(batch, e)
	}
	if err := r.st.WriteAudit(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) []map[string]any {
		t.Helper()
		var out []map[string]any
		if err := json.Unmarshal([]byte(r.cli(append([]string{"audit", "list", "--json", "--limit", "5000"}, args...)...)), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--reason", "expired"}, 250},
		{[]string{"--ip", "2001:db8::1"}, 250},
		{[]string{"--session", "s-a"}, 2250},
		{[]string{"--site", r.B.name}, 250},
		{[]string{"--site", r.A.name, "--reason", "expired"}, 0},
	} {
		if got := len(list(c.args...)); got != c.want {
			t.Errorf("audit list %v: %d records, want %d", c.args, got, c.want)
		}
	}
	// Two pages of 100 follow on.
	var p1, p2 []map[string]any
	json.Unmarshal([]byte(r.cli("audit", "list", "--json", "--reason", "expired", "--limit", "100")), &p1)
	last := int64(p1[len(p1)-1]["id"].(float64))
	json.Unmarshal([]byte(r.cli("audit", "list", "--json", "--reason", "expired", "--limit", "100", "--before", fmt.Sprint(last))), &p2)
	t1, _ := time.Parse(time.RFC3339Nano, p1[len(p1)-1]["time"].(string))
	t2, _ := time.Parse(time.RFC3339Nano, p2[0]["time"].(string))
	if len(p1) != 100 || len(p2) != 100 || !t2.Before(t1) || int64(p2[0]["id"].(float64)) == last {
		t.Errorf("pages of %d and %d, the second starting at %v (id %v) after %v (id %d)", len(p1), len(p2), t2, p2[0]["id"], t1, last)
	}

	// Export: every record, more than one store page.
	jsonl := r.cli("audit", "export", "--format", "jsonl")
	if n := strings.Count(jsonl, "\n"); n != 2500 {
		t.Errorf("export jsonl: %d lines, want 2500", n)
	}
	rows, err := csv.NewReader(strings.NewReader(r.cli("audit", "export", "--format", "csv", "--reason", "revoked"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2251 || rows[0][0] != "id" {
		t.Fatalf("export csv: %d rows (header %v), want a header and 2250", len(rows), rows[0])
	}
	ua := -1
	for i, h := range rows[0] {
		if h == "user_agent" {
			ua = i
		}
	}
	if got := rows[1][ua]; !strings.HasPrefix(got, "'=") {
		t.Errorf("a user agent starting with = exported as %q, want it quoted against spreadsheet formulas", got)
	}

	// The admin API: a cursor for the next page, and streamed exports.
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := http.Get("http://" + r.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("/latchkey/audit?reason=expired&limit=200")
	next := resp.Header.Get("X-Latchkey-Next-Before")
	resp.Body.Close()
	resp = get("/latchkey/audit?reason=expired&limit=200&before=" + next)
	var page []map[string]any
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if next == "" || len(page) != 50 || resp.Header.Get("X-Latchkey-Next-Before") != "" {
		t.Errorf("admin API paging: next %q, second page %d records (want 50, and no further cursor)", next, len(page))
	}
	resp = get("/latchkey/audit?format=csv&ip=2001:db8::1")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Count(string(body), "\n") != 251 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Errorf("admin API csv export: %d, %s, %d lines", resp.StatusCode, resp.Header.Get("Content-Type"), strings.Count(string(body), "\n"))
	}
	if resp := get("/latchkey/audit?format=xml"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("format=xml: %d, want 400", resp.StatusCode)
	}
}
