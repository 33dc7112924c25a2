package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// statsWhere is the WHERE clause of q's audit records, after the first
// `first` arguments; ok is false when nothing can match (a value no row can
// hold). The time range comes first so that audit_time bounds the scan.
func statsWhere(q store.StatsQuery, first int) (w string, args []any, ok bool) {
	bind := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(first+len(args))
	}
	w = ` WHERE time >= ` + bind(q.Since.UnixNano()) + ` AND time < ` + bind(q.Until.UnixNano())
	if q.Outcome != "" {
		if !storable(q.Outcome) {
			return "", nil, false
		}
		w += ` AND outcome = ` + bind(q.Outcome)
	}
	if len(q.Hosts) > 0 {
		var hosts []string
		for _, h := range q.Hosts {
			if storable(h) {
				hosts = append(hosts, h)
			}
		}
		if len(hosts) == 0 {
			return "", nil, false
		}
		w += ` AND ` + store.HostCondition("host", hosts, bind)
	}
	return w, args, true
}

// AuditHistogram counts q's records by bucket and outcome.
func (s *Store) AuditHistogram(ctx context.Context, q store.StatsQuery) ([]store.AuditBucket, error) {
	if q.Step <= 0 {
		return nil, fmt.Errorf("audit histogram: step %v is not positive", q.Step)
	}
	w, args, ok := statsWhere(q, 2)
	if !ok {
		return nil, nil
	}
	since, step := q.Since.UnixNano(), int64(q.Step)
	// Integer division of a non-negative offset: the bucket's index.
	query := `SELECT (time - $1) / $2 AS bucket, outcome, sum(count) FROM audit` + w + ` GROUP BY bucket, outcome ORDER BY bucket, outcome`
	return listRows(ctx, s.pool, fmt.Sprintf("audit histogram %+v", q), query, append([]any{since, step}, args...),
		func(r scanner, b *store.AuditBucket) error {
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
	w, args, ok := statsWhere(q, 0)
	if !ok {
		return nil, nil
	}
	// COLLATE "C": ties ordered by bytes, as SQLite orders them.
	query := `SELECT ` + col + `, sum(count) AS n FROM audit` + w + ` GROUP BY ` + col + ` ORDER BY n DESC, ` + col + ` COLLATE "C" LIMIT $` + strconv.Itoa(len(args)+1)
	return listRows(ctx, s.pool, fmt.Sprintf("audit top %s %+v", by, q), query, append(args, limit),
		func(r scanner, t *store.Tally) error { return r.Scan(&t.Value, &t.Count) })
}

// CountSessions counts the site's live sessions.
func (s *Store) CountSessions(ctx context.Context, site string, now, seenSince time.Time) (int, error) {
	if !storable(site) {
		return 0, nil
	}
	var n int
	q := `SELECT count(*) FROM sessions WHERE site = $1 AND revoked_at IS NULL AND expires_at > $2`
	args := []any{site, now.UnixNano()}
	if !seenSince.IsZero() {
		q += ` AND last_seen_at >= $3`
		args = append(args, seenSince.UnixNano())
	}
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the sessions of site %q: %w", site, err)
	}
	return n, nil
}

// MailCounts counts the site's mails by state.
func (s *Store) MailCounts(ctx context.Context, site string) (map[string]int, error) {
	out := map[string]int{}
	if !storable(site) {
		return out, nil
	}
	type row struct {
		state string
		n     int
	}
	rows, err := listRows(ctx, s.pool, "mail counts of site "+site, `SELECT state, count(*) FROM outbox WHERE site = $1 GROUP BY state`, []any{site},
		func(r scanner, x *row) error { return r.Scan(&x.state, &x.n) })
	if err != nil {
		return nil, err
	}
	for _, x := range rows {
		out[x.state] = x.n
	}
	return out, nil
}

// SiteMails lists the site's latest mails, without bodies.
func (s *Store) SiteMails(ctx context.Context, site string, limit int) ([]store.Mail, error) {
	if limit <= 0 || !storable(site) {
		return nil, nil
	}
	q := `SELECT ` + mailListColumns + ` FROM outbox WHERE site = $1 ORDER BY created_at DESC, id DESC LIMIT $2`
	return listRows(ctx, s.pool, "latest mails of site "+site, q, []any{site, limit}, scanMail)
}
