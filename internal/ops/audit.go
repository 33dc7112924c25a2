package ops

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// AuditQuery is the audit filter as the CLI and the admin API take it.
type AuditQuery struct {
	// Since is a duration back from now (15m, 1h, 7d) or an RFC 3339 time.
	Since   string
	User    string // email or id
	Kind    string
	Outcome string // accepted or refused
	Reason  string
	IP      string
	Session string
	// Site: the records of one site's hosts (name or host, as the config
	// has it).
	Site string
	// Before continues a listing after its last record's id.
	Before int64
	Limit  int
}

// filter checks q and turns it into the store's filter.
func (o *Ops) filter(ctx context.Context, q AuditQuery) (store.AuditFilter, error) {
	f := store.AuditFilter{Kind: q.Kind, Outcome: q.Outcome, Reason: q.Reason, ClientIP: strings.TrimSpace(q.IP),
		SessionID: q.Session, BeforeID: q.Before, Limit: q.Limit}
	if q.Since != "" {
		if t, err := time.Parse(time.RFC3339, q.Since); err == nil {
			f.Since = t
		} else if d, err := ParseDuration(q.Since); err == nil && d > 0 {
			f.Since = o.now().Add(-d)
		} else {
			return f, inputErr("since: %q is neither a duration (15m, 1h, 7d) nor an RFC 3339 time", q.Since)
		}
	}
	if q.Outcome != "" && q.Outcome != store.OutcomeAccepted && q.Outcome != store.OutcomeRefused {
		return f, inputErr("outcome: %q is not accepted or refused", q.Outcome)
	}
	if q.Limit < 0 || q.Before < 0 {
		return f, inputErr("limit and before must not be negative")
	}
	if q.User != "" {
		u, err := o.ResolveUser(ctx, q.User, "")
		if err != nil {
			return f, err
		}
		f.UserID = u.ID
	}
	if q.Site != "" {
		sc, err := o.PickSite(q.Site)
		if err != nil {
			return f, err
		}
		if len(sc.Site.Hosts) == 0 {
			return f, inputErr("site %q answers for any host, so its records cannot be told from others' by host", sc.Site.Name)
		}
		f.Hosts = sc.Site.Hosts
	}
	return f, nil
}

// Audit lists audit records, newest first.
func (o *Ops) Audit(ctx context.Context, q AuditQuery) ([]store.AuditEvent, error) {
	f, err := o.filter(ctx, q)
	if err != nil {
		return nil, err
	}
	return o.Store.Audit(ctx, f)
}

// exportPage is how many records an export reads at a time: memory stays
// bounded whatever the trail's size.
const exportPage = 1000

// ExportAudit writes every record q selects (Limit ignored), newest first,
// as JSON Lines ("jsonl", one AuditJSON a line) or CSV ("csv", a header and
// the same fields), reading the store a page at a time. It returns how many
// records it wrote.
func (o *Ops) ExportAudit(ctx context.Context, q AuditQuery, format string, w io.Writer) (int, error) {
	if format != "jsonl" && format != "csv" {
		return 0, inputErr("format: %q is not jsonl or csv", format)
	}
	f, err := o.filter(ctx, q)
	if err != nil {
		return 0, err
	}
	f.Limit = exportPage
	var cw *csv.Writer
	enc := json.NewEncoder(w)
	if format == "csv" {
		cw = csv.NewWriter(w)
		if err := cw.Write(auditCSVHeader); err != nil {
			return 0, err
		}
	}
	n := 0
	for {
		page, err := o.Store.Audit(ctx, f)
		if err != nil {
			return n, fmt.Errorf("exporting audit after %d records: %w", n, err)
		}
		for i := range page {
			js := ToAuditJSON(&page[i])
			if cw != nil {
				err = cw.Write(auditCSVRow(&js))
			} else {
				err = enc.Encode(js)
			}
			if err != nil {
				return n, err
			}
			n++
		}
		if cw != nil {
			if cw.Flush(); cw.Error() != nil {
				return n, cw.Error()
			}
		}
		if len(page) < f.Limit {
			return n, nil
		}
		f.BeforeID = page[len(page)-1].ID
	}
}

var auditCSVHeader = []string{"id", "time", "kind", "credential_id", "user_id", "session_id", "outcome", "reason", "count",
	"method", "host", "path", "status", "client_ip", "user_agent", "browser", "browser_version", "os", "device", "bot", "latency_us"}

func auditCSVRow(e *AuditJSON) []string {
	return []string{strconv.FormatInt(e.ID, 10), e.Time.UTC().Format(TimeFormat), e.Kind, csvText(e.CredentialID), strconv.FormatInt(e.UserID, 10),
		e.SessionID, e.Outcome, e.Reason, strconv.FormatInt(e.Count, 10), e.Method, csvText(e.Host), csvText(e.Path), strconv.Itoa(e.Status),
		e.ClientIP, csvText(e.UserAgent), e.Browser, e.Version, e.OS, e.Device, strconv.FormatBool(e.Bot), strconv.FormatInt(e.LatencyUS, 10)}
}

// csvText keeps client text from being read as a formula by a spreadsheet
// that opens the export (CSV injection): a leading =, +, - or @ gets a '.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
