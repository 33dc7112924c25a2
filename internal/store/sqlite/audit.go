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
	ua_bot, latency_us`

const insertAuditSQL = `INSERT INTO audit (time, kind, credential_id, user_id, session_id, outcome, reason,
	method, host, path, status, client_ip, user_agent, ua_browser, ua_version, ua_os, ua_device,
	ua_bot, latency_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// defaultAuditLimit keeps an unbounded Audit call from reading the whole log.
const defaultAuditLimit = 100

// WriteAudit writes all events in one transaction: SQLite's cost is per
// commit (the WAL fsync), not per row, so batching is what lets the log keep
// up with the proxy. Event IDs are assigned by the store and written back
// into events. A zero Time is stored as now; Latency is kept to the
// microsecond.
func (s *Store) WriteAudit(ctx context.Context, events []store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st := tx.StmtContext(ctx, s.insertAudit)
		defer st.Close()
		for i := range events {
			e := &events[i]
			t := now
			if !e.Time.IsZero() {
				t = e.Time.UnixNano()
			}
			var user any
			if e.UserID != 0 {
				user = e.UserID
			}
			res, err := st.ExecContext(ctx, t, e.Kind, e.CredentialID, user, e.SessionID, e.Outcome, e.Reason,
				e.Method, e.Host, e.Path, e.Status, e.ClientIP, e.UserAgent, e.UABrowser, e.UAVersion, e.UAOS, e.UADevice,
				e.UABot, e.Latency.Microseconds())
			if err != nil {
				return fmt.Errorf("event %d (%s %s for %s%s): %w", i, e.Kind, e.Outcome, e.Host, e.Path, err)
			}
			if e.ID, err = res.LastInsertId(); err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		for i := range events {
			events[i].ID = 0 // rolled back
		}
		return fmt.Errorf("writing %d audit events: %w", len(events), err)
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
	if f.Kind != "" {
		q.WriteString(` AND kind = ?`)
		args = append(args, f.Kind)
	}
	if f.Outcome != "" {
		q.WriteString(` AND outcome = ?`)
		args = append(args, f.Outcome)
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
			&e.UABot, &latency); err != nil {
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
