package sqlite

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// statsWhere is the WHERE clause of q's audit records and its arguments.
// The time range comes first so that audit_time bounds the scan.
func statsWhere(q store.StatsQuery) (string, []any) {
	args := []any{q.Since.UnixNano(), q.Until.UnixNano()}
	w := ` WHERE time >= ? AND time < ?`
	if q.Outcome != "" {
		w += ` AND outcome = ?`
		args = append(args, q.Outcome)
	}
	if c := store.HostCondition("host", q.Hosts, func(v any) string { args = append(args, v); return "?" }); c != "" {
		w += ` AND ` + c
	}
	return w, args
}

func histogramSQL(q store.StatsQuery) (string, []any) {
	w, args := statsWhere(q)
	// Integer division of a non-negative offset: the bucket's index.
	return `SELECT (time - ?) / ? AS bucket, outcome, sum(count) FROM audit` + w + ` GROUP BY bucket, outcome ORDER BY bucket, outcome`,
		append([]any{q.Since.UnixNano(), int64(q.Step)}, args...)
}

func topSQL(q store.StatsQuery, col string, limit int) (string, []any) {
	w, args := statsWhere(q)
	return `SELECT ` + col + `, sum(count) AS n FROM audit` + w + ` GROUP BY ` + col + ` ORDER BY n DESC, ` + col + ` LIMIT ?`, append(args, limit)
}

// AuditHistogram counts q's records by bucket and outcome.
func (s *Store) AuditHistogram(ctx context.Context, q store.StatsQuery) ([]store.AuditBucket, error) {
	if q.Step <= 0 {
		return nil, fmt.Errorf("audit histogram: step %v is not positive", q.Step)
	}
	since, step := q.Since.UnixNano(), int64(q.Step)
	query, args := histogramSQL(q)
	return listRows(ctx, s.r, fmt.Sprintf("audit histogram %+v", q), query, args,
		func(r interface{ Scan(...any) error }, b *store.AuditBucket) error {
			var i int64
			if err := r.Scan(&i, &b.Outcome, &b.Count); err != nil {
				return err
			}
			b.Start = time.Unix(0, since+i*step)
			return nil
		})
}

// tallyColumns are the fields AuditTop counts by, so that no caller's
// string reaches the SQL.
var tallyColumns = map[string]string{store.TallyClientIP: "client_ip", store.TallyReason: "reason", store.TallyKind: "kind"}

// AuditTop counts q's records by one field, largest counts first.
func (s *Store) AuditTop(ctx context.Context, q store.StatsQuery, by string, limit int) ([]store.Tally, error) {
	col, ok := tallyColumns[by]
	if !ok {
		return nil, fmt.Errorf("audit top: cannot count by %q", by)
	}
	if limit <= 0 {
		return nil, nil
	}
	query, args := topSQL(q, col, limit)
	return listRows(ctx, s.r, fmt.Sprintf("audit top %s %+v", by, q), query, args,
		func(r interface{ Scan(...any) error }, t *store.Tally) error { return r.Scan(&t.Value, &t.Count) })
}

// The site's rows, found by the site's indexes (migration 15).
const (
	countSessionsSQL = `SELECT count(*) FROM sessions WHERE site = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at >= ?`
	mailCountsSQL    = `SELECT state, count(*) FROM outbox WHERE site = ? GROUP BY state`
	siteMailsSQL     = `SELECT ` + mailListColumns + ` FROM outbox WHERE site = ? ORDER BY created_at DESC, id DESC LIMIT ?`
)

// CountSessions counts the site's live sessions.
func (s *Store) CountSessions(ctx context.Context, site string, now, seenSince time.Time) (int, error) {
	var n int
	seen := int64(math.MinInt64) // a zero seenSince bounds nothing
	if !seenSince.IsZero() {
		seen = seenSince.UnixNano()
	}
	if err := s.r.QueryRowContext(ctx, countSessionsSQL, site, now.UnixNano(), seen).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the sessions of site %q: %w", site, err)
	}
	return n, nil
}

// MailCounts counts the site's mails by state.
func (s *Store) MailCounts(ctx context.Context, site string) (map[string]int, error) {
	type row struct {
		state string
		n     int
	}
	rows, err := listRows(ctx, s.r, "mail counts of site "+site, mailCountsSQL, []any{site},
		func(r interface{ Scan(...any) error }, x *row) error { return r.Scan(&x.state, &x.n) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, x := range rows {
		out[x.state] = x.n
	}
	return out, nil
}

// SiteMails lists the site's latest mails, without bodies.
func (s *Store) SiteMails(ctx context.Context, site string, limit int) ([]store.Mail, error) {
	if limit <= 0 {
		return nil, nil
	}
	return listRows(ctx, s.r, "latest mails of site "+site, siteMailsSQL, []any{site, limit}, scanMail)
}
