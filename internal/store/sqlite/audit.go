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

// auditChunk is how many rows one multi-row INSERT carries. Binding,
// stepping and resetting a statement costs about as much as a row, so
// writing rows in chunks roughly halves the cost per row; 32 rows of 19
// columns stay far below SQLite's limit on bound parameters.
const auditChunk = 8

// auditColumnCount is the number of values bound per audit row.
const auditColumnCount = 19

var insertAuditChunkSQL = func() string {
	row := "(" + strings.Repeat("?, ", auditColumnCount-1) + "?)"
	rows := make([]string, auditChunk)
	for i := range rows {
		rows[i] = row
	}
	return insertAuditSQL[:strings.Index(insertAuditSQL, "VALUES")] + "VALUES " + strings.Join(rows, ", ")
}()

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
		e.UABot, e.Latency.Microseconds())
}

// WriteAudit writes all events in one transaction: SQLite's cost is per
// commit (the WAL writes), not per row, so batching is what lets the log
// keep up with the proxy. A zero Time is stored as now; Latency is kept to
// the microsecond. Event IDs are not written back.
//
// ctx is checked between statements rather than handed to the driver,
// which would start a goroutine per statement to watch it; that costs more
// than the insert. The transaction still ends when ctx does.
func (s *Store) WriteAudit(ctx context.Context, events []store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	bg := context.WithoutCancel(ctx)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		args := make([]any, 0, auditChunk*auditColumnCount)
		rest := events
		if len(rest) >= auditChunk {
			chunk := tx.StmtContext(ctx, s.insertAuditChunk)
			defer chunk.Close()
			for len(rest) >= auditChunk {
				if err := ctx.Err(); err != nil {
					return err
				}
				args = args[:0]
				for i := range rest[:auditChunk] {
					args = appendAuditArgs(args, &rest[i], now)
				}
				if _, err := chunk.ExecContext(bg, args...); err != nil {
					return fmt.Errorf("events %d to %d: %w", len(events)-len(rest), len(events)-len(rest)+auditChunk-1, err)
				}
				rest = rest[auditChunk:]
			}
		}
		if len(rest) > 0 {
			one := tx.StmtContext(ctx, s.insertAudit)
			defer one.Close()
			for i := range rest {
				if err := ctx.Err(); err != nil {
					return err
				}
				if _, err := one.ExecContext(bg, appendAuditArgs(args[:0], &rest[i], now)...); err != nil {
					return fmt.Errorf("event %d: %w", len(events)-len(rest)+i, err)
				}
			}
		}
		return nil
	})
	if err != nil {
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
