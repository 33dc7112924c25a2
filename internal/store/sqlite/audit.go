package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const auditColumns = `id, time, kind, credential_id, user_id, session_id, outcome, reason,
	method, host, path, status, client_ip, user_agent, ua_browser, ua_version, ua_os, ua_device,
	ua_bot, latency_us, count`

const insertAuditSQL = `INSERT INTO audit (time, kind, credential_id, user_id, session_id, outcome, reason,
	method, host, path, status, client_ip, user_agent, ua_browser, ua_version, ua_os, ua_device,
	ua_bot, latency_us, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// defaultAuditLimit keeps an unbounded Audit call from reading the whole log.
const defaultAuditLimit = 100

// auditColumnCount is the number of values bound per audit row.
const auditColumnCount = 20

func appendAuditArgs(args []any, e *store.AuditEvent, now int64) []any {
	t := now
	if !e.Time.IsZero() {
		t = e.Time.UnixNano()
	}
	var user any
	if e.UserID != 0 {
		user = e.UserID
	}
	return append(args, t, e.Kind, e.CredentialID, user, e.SessionID, e.Outcome, e.Reason,
		e.Method, e.Host, e.Path, int64(e.Status), e.ClientIP, e.UserAgent, e.UABrowser, e.UAVersion, e.UAOS, e.UADevice,
		e.UABot, e.Latency.Microseconds(), max(e.Count, 1))
}

// WriteAudit writes all events in one transaction: SQLite's cost is per
// commit (the WAL writes), not per row, so batching is what lets the log
// keep up with the proxy. A zero Time is stored as now; Latency is kept to
// the microsecond; a Count below 1 is stored as 1. Event IDs are not
// written back.
//
// Rows go in one prepared single-row INSERT each. A multi-row INSERT was
// measured slower: SQLite gives it a statement journal, which spills to a
// temporary file, and the driver looks up every parameter's name by a
// linear scan, which is quadratic in the row count.
//
// ctx is checked between rows rather than handed to the driver, which
// would start a goroutine per statement to watch it and so triple the cost
// of an insert. The transaction still ends when ctx does.
func (s *Store) WriteAudit(ctx context.Context, events []store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	bg := context.WithoutCancel(ctx)
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st := tx.StmtContext(ctx, s.insertAudit)
		defer st.Close()
		args := make([]any, 0, auditColumnCount)
		uses := map[string]*linkUses{}
		for i := range events {
			if err := ctx.Err(); err != nil {
				return err
			}
			if e := &events[i]; e.StatusUpdate {
				if _, err := s.txExec(bg, tx, `UPDATE audit SET status = ?, latency_us = ? WHERE id = ?`, e.Status, e.Latency.Microseconds(), e.ID); err != nil {
					return fmt.Errorf("status of audit event %d: %w", e.ID, err)
				}
				continue
			}
			if _, err := st.ExecContext(bg, appendAuditArgs(args[:0], &events[i], now)...); err != nil {
				e := &events[i]
				return fmt.Errorf("event %d (%s %s for %s%s): %w", i, e.Kind, e.Outcome, e.Host, e.Path, err)
			}
			if e := &events[i]; e.CountsLinkUse && e.CredentialID != "" {
				t := now
				if !e.Time.IsZero() {
					t = e.Time.UnixNano()
				}
				u := uses[e.CredentialID]
				if u == nil {
					u = &linkUses{first: t, last: t}
					uses[e.CredentialID] = u
				}
				u.n += int64(max(e.Count, 1))
				u.first, u.last = min(u.first, t), max(u.last, t)
			}
		}
		// One update a link, whatever number of its uses the batch holds.
		for jti, u := range uses {
			if _, err := s.txExec(bg, tx, `UPDATE links SET uses = uses + ?1,
					first_used_at = coalesce(first_used_at, ?2), last_used_at = max(coalesce(last_used_at, 0), ?3)
				WHERE jti = ?4`, u.n, u.first, u.last, jti); err != nil {
				return fmt.Errorf("counting %d uses of link %q: %w", u.n, jti, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d audit events: %w", len(events), err)
	}
	return nil
}

// linkUses are a batch's uses of one unlimited link.
type linkUses struct {
	n           int64
	first, last int64
}

// insertAuditTx writes e in tx, the transaction of a consumed credential,
// and writes back into e its ID and, if it was zero, its Time, which is
// stored as at, and its Count as stored (1: such a record is never
// aggregated, so a caller leaves it zero).
func (s *Store) insertAuditTx(ctx context.Context, tx *sql.Tx, e *store.AuditEvent, at time.Time) error {
	st := tx.StmtContext(ctx, s.insertAudit)
	defer st.Close()
	res, err := st.ExecContext(ctx, appendAuditArgs(nil, e, at.UnixNano())...)
	if err != nil {
		return fmt.Errorf("writing audit event: %w", err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("writing audit event: %w", err)
	}
	if e.Time.IsZero() {
		e.Time = at
	}
	e.Count = max(e.Count, 1)
	return nil
}

// SetAuditStatus fills in the status and latency (kept to the microsecond)
// of the record with id; a missing record is store.ErrNotFound.
func (s *Store) SetAuditStatus(ctx context.Context, id int64, status int, latency time.Duration) error {
	res, err := s.w.ExecContext(ctx, `UPDATE audit SET status = ?, latency_us = ? WHERE id = ?`,
		int64(status), latency.Microseconds(), id)
	if err := oneRow(res, err); err != nil {
		return fmt.Errorf("setting status %d of audit event %d: %w", status, id, err)
	}
	return nil
}

// Audit lists newest first; a zero Limit means defaultAuditLimit.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var q strings.Builder
	var args []any
	q.WriteString(`SELECT ` + auditColumns + ` FROM audit WHERE 1`)
	if !f.Since.IsZero() {
		q.WriteString(` AND time >= ?`)
		args = append(args, f.Since.UnixNano())
	}
	if f.UserID != 0 {
		q.WriteString(` AND user_id = ?`)
		args = append(args, f.UserID)
	}
	if f.CredentialID != "" {
		q.WriteString(` AND credential_id = ?`)
		args = append(args, f.CredentialID)
	}
	if f.Kind != "" {
		q.WriteString(` AND kind = ?`)
		args = append(args, f.Kind)
	}
	if f.Outcome != "" {
		q.WriteString(` AND outcome = ?`)
		args = append(args, f.Outcome)
	}
	if !f.Until.IsZero() {
		q.WriteString(` AND time < ?`)
		args = append(args, f.Until.UnixNano())
	}
	for _, c := range []struct{ col, val string }{{"reason", f.Reason}, {"client_ip", f.ClientIP}, {"session_id", f.SessionID}} {
		if c.val != "" {
			q.WriteString(` AND ` + c.col + ` = ?`)
			args = append(args, c.val)
		}
	}
	if len(f.Hosts) > 0 {
		q.WriteString(` AND (`)
		for i, h := range f.Hosts {
			if i > 0 {
				q.WriteString(` OR `)
			}
			// The host as recorded, with or without a port.
			q.WriteString(`host = ? OR host LIKE ? ESCAPE '\'`)
			args = append(args, h, likePrefix(h+":"))
		}
		q.WriteString(`)`)
	}
	if f.BeforeID != 0 {
		q.WriteString(` AND (time, id) < (SELECT time, id FROM audit WHERE id = ?)`)
		args = append(args, f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	q.WriteString(` ORDER BY time DESC, id DESC LIMIT ?`)
	args = append(args, limit)

	rows, err := s.r.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("reading audit %+v: %w", f, err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var t int64
		var user sql.NullInt64
		var latency int64
		if err := rows.Scan(&e.ID, &t, &e.Kind, &e.CredentialID, &user, &e.SessionID, &e.Outcome, &e.Reason,
			&e.Method, &e.Host, &e.Path, &e.Status, &e.ClientIP, &e.UserAgent, &e.UABrowser, &e.UAVersion, &e.UAOS, &e.UADevice,
			&e.UABot, &latency, &e.Count); err != nil {
			return nil, fmt.Errorf("reading audit %+v: %w", f, err)
		}
		e.Time = time.Unix(0, t)
		e.UserID = user.Int64
		e.Latency = time.Duration(latency) * time.Microsecond
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading audit %+v: %w", f, err)
	}
	return out, nil
}

// likePrefix is a LIKE pattern (escape '\\') matching what starts with p.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}
