package postgres

import (
	"context"
	"fmt"
	"github.com/jackc/pgx/v5"
	"math"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

const auditColumns = `id, time, kind, credential_id, user_id, session_id, outcome, reason,
	method, host, path, status, client_ip, user_agent, ua_browser, ua_version, ua_os, ua_device,
	ua_bot, latency_us, count`

const auditInsertColumns = `time, kind, credential_id, user_id, session_id, outcome, reason,
	method, host, path, status, client_ip, user_agent, ua_browser, ua_version, ua_os, ua_device,
	ua_bot, latency_us, count`

// defaultAuditLimit keeps an unbounded Audit call from reading the whole log.
const defaultAuditLimit = 100

// auditArgs are the values of one audit row, in auditInsertColumns order,
// with a zero Time as now and the strings made storable (see text): a
// malformed User-Agent must not cost the record, or the batch it is in.
func auditArgs(e *store.AuditEvent, now time.Time) []any {
	t := now
	if !e.Time.IsZero() {
		t = e.Time
	}
	return []any{t.UnixNano(), text(e.Kind), text(e.CredentialID), nullID(e.UserID), text(e.SessionID),
		text(e.Outcome), text(e.Reason), text(e.Method), text(e.Host), text(e.Path), int32(e.Status),
		text(e.ClientIP), text(e.UserAgent), text(e.UABrowser), text(e.UAVersion), text(e.UAOS), text(e.UADevice),
		e.UABot, e.Latency.Microseconds(), auditCount(e.Count)}
}

// writeAuditSQL inserts a batch as one statement over parallel arrays, one
// per column: one round trip and one prepared statement whatever the batch
// size, and atomic without a transaction.
const writeAuditSQL = `INSERT INTO audit (` + auditInsertColumns + `)
	SELECT t, k, c, nullif(u, 0), sid, o, r, m, h, p, st, ip, ua, b, v, os, d, bot, l, n
	FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::text[], $11::integer[], $12::text[], $13::text[], $14::text[], $15::text[],
		$16::text[], $17::text[], $18::boolean[], $19::bigint[], $20::integer[])
		AS x(t, k, c, u, sid, o, r, m, h, p, st, ip, ua, b, v, os, d, bot, l, n)`

// WriteAudit writes all events in one statement, so atomically. A zero Time
// is stored as now; Latency is kept to the microsecond. A Count below 1
// is stored as 1. Event IDs are not written back.
func (s *Store) WriteAudit(ctx context.Context, events []store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	var ids, lats []int64
	var sts []int32
	// Uses of unlimited links, counted per link.
	type use struct {
		n           int64
		first, last int64
	}
	uses := map[string]*use{}
	inserts := events[:0:0]
	now := time.Now().UnixNano()
	for _, e := range events {
		if e.StatusUpdate {
			ids, sts, lats = append(ids, e.ID), append(sts, int32(e.Status)), append(lats, e.Latency.Microseconds())
			continue
		}
		inserts = append(inserts, e)
		if e.CountsLinkUse && e.CredentialID != "" {
			t := now
			if !e.Time.IsZero() {
				t = e.Time.UnixNano()
			}
			u := uses[e.CredentialID]
			if u == nil {
				u = &use{first: t, last: t}
				uses[e.CredentialID] = u
			}
			u.n += int64(max(e.Count, 1))
			u.first, u.last = min(u.first, t), max(u.last, t)
		}
	}
	if len(ids) == 0 && len(uses) == 0 {
		return s.writeAudit(ctx, s.pool, events)
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if len(inserts) > 0 {
			if err := s.writeAudit(ctx, tx, inserts); err != nil {
				return err
			}
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE audit a SET status = u.status, latency_us = u.lat
				FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS u(id, status, lat) WHERE a.id = u.id`, ids, sts, lats); err != nil {
				return s.wrap(fmt.Sprintf("setting the status of %d audit events", len(ids)), err)
			}
		}
		if len(uses) > 0 {
			var jtis []string
			var ns []int32
			var firsts, lasts []int64
			for jti, u := range uses {
				jtis, ns, firsts, lasts = append(jtis, text(jti)), append(ns, int32(min(u.n, math.MaxInt32))), append(firsts, u.first), append(lasts, u.last)
			}
			if _, err := tx.Exec(ctx, `UPDATE links l SET uses = l.uses + u.n,
					first_used_at = coalesce(l.first_used_at, u.first),
					last_used_at = greatest(coalesce(l.last_used_at, 0), u.last)
				FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[]) AS u(jti, n, first, last)
				WHERE l.jti = u.jti`, jtis, ns, firsts, lasts); err != nil {
				return s.wrap(fmt.Sprintf("counting uses of %d links", len(jtis)), err)
			}
		}
		return nil
	})
}

// writeAudit inserts new records, in one statement, with q (the pool or a
// transaction).
func (s *Store) writeAudit(ctx context.Context, q querier, events []store.AuditEvent) error {
	n := len(events)
	var (
		times, users, latencies                                                = make([]int64, n), make([]int64, n), make([]int64, n)
		kinds, creds, sids, outcomes, reasons, methods, hosts, paths, ips, uas = mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		browsers, versions, oses, devices                                      = mk(n), mk(n), mk(n), mk(n)
		statuses, counts                                                       = make([]int32, n), make([]int32, n)
		bots                                                                   = make([]bool, n)
	)
	now := time.Now()
	for i := range events {
		e := &events[i]
		t := now
		if !e.Time.IsZero() {
			t = e.Time
		}
		times[i], users[i], latencies[i] = t.UnixNano(), e.UserID, e.Latency.Microseconds()
		kinds[i], creds[i], sids[i], outcomes[i], reasons[i] = text(e.Kind), text(e.CredentialID), text(e.SessionID), text(e.Outcome), text(e.Reason)
		methods[i], hosts[i], paths[i], ips[i], uas[i] = text(e.Method), text(e.Host), text(e.Path), text(e.ClientIP), text(e.UserAgent)
		browsers[i], versions[i], oses[i], devices[i] = text(e.UABrowser), text(e.UAVersion), text(e.UAOS), text(e.UADevice)
		statuses[i], bots[i], counts[i] = int32(e.Status), e.UABot, auditCount(e.Count)
	}
	if _, err := q.Exec(ctx, writeAuditSQL, times, kinds, creds, users, sids, outcomes, reasons,
		methods, hosts, paths, statuses, ips, uas, browsers, versions, oses, devices, bots, latencies, counts); err != nil {
		return fmt.Errorf("writing %d audit events: %w", n, err)
	}
	return nil
}

func mk(n int) []string { return make([]string, n) }

// auditCount is the count column's value: at least 1, and at most what an
// INTEGER holds (a count past it would be a flood of two billion refusals
// in one second; the row then says "at least").
func auditCount(n int64) int32 {
	return int32(min(max(n, 1), math.MaxInt32))
}

// insertAudit writes e with q (the transaction of a consumed credential)
// and writes back into e its ID and, if it was zero, its Time, which is
// stored as at, and its Count as stored.
func insertAudit(ctx context.Context, q querier, e *store.AuditEvent, at time.Time) error {
	var id int64
	if err := q.QueryRow(ctx, `INSERT INTO audit (`+auditInsertColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
		RETURNING id`, auditArgs(e, at)...).Scan(&id); err != nil {
		return fmt.Errorf("writing audit event: %w", err)
	}
	e.ID = id
	if e.Time.IsZero() {
		e.Time = at
	}
	e.Count = int64(auditCount(e.Count))
	return nil
}

// SetAuditStatus fills in the status and latency (kept to the microsecond)
// of the record with id; a missing record is store.ErrNotFound.
func (s *Store) SetAuditStatus(ctx context.Context, id int64, status int, latency time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE audit SET status = $1, latency_us = $2 WHERE id = $3`,
		int32(status), latency.Microseconds(), id)
	if err := oneRow(tag, err); err != nil {
		return fmt.Errorf("setting status %d of audit event %d: %w", status, id, err)
	}
	return nil
}

// Audit lists newest first (by Time, then ID); a zero Limit means
// defaultAuditLimit.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var w where
	if !f.Since.IsZero() {
		w.add(`time >= ?`, f.Since.UnixNano())
	}
	if f.UserID != 0 {
		w.add(`user_id = ?`, f.UserID)
	}
	if !f.Until.IsZero() {
		w.add(`time < ?`, f.Until.UnixNano())
	}
	for _, c := range []struct{ cond, val string }{
		{`credential_id = ?`, f.CredentialID}, {`kind = ?`, f.Kind}, {`outcome = ?`, f.Outcome},
		{`reason = ?`, f.Reason}, {`client_ip = ?`, f.ClientIP}, {`session_id = ?`, f.SessionID},
	} {
		if c.val != "" {
			if !storable(c.val) {
				return nil, nil
			}
			w.add(c.cond, c.val)
		}
	}
	if len(f.Hosts) > 0 {
		var conds []string
		var args []any
		for _, h := range f.Hosts {
			if !storable(h) {
				continue
			}
			conds = append(conds, `host = ? OR host LIKE ? ESCAPE '\'`)
			args = append(args, h, likePrefix(h+":"))
		}
		if len(conds) == 0 {
			return nil, nil
		}
		w.addAll("("+strings.Join(conds, " OR ")+")", args...)
	}
	if f.BeforeID != 0 {
		w.addAll(`(time, id) < (SELECT time, id FROM audit WHERE id = ?)`, f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	q := `SELECT ` + auditColumns + ` FROM audit` + w.sql() + ` ORDER BY time DESC, id DESC` + w.limit(limit)
	return listRows(ctx, s.pool, fmt.Sprintf("audit %+v", f), q, w.args, func(r scanner, e *store.AuditEvent) error {
		var t, latency int64
		var count int32
		var user *int64
		if err := r.Scan(&e.ID, &t, &e.Kind, &e.CredentialID, &user, &e.SessionID, &e.Outcome, &e.Reason,
			&e.Method, &e.Host, &e.Path, &e.Status, &e.ClientIP, &e.UserAgent, &e.UABrowser, &e.UAVersion, &e.UAOS, &e.UADevice,
			&e.UABot, &latency, &count); err != nil {
			return err
		}
		e.Time = time.Unix(0, t)
		if user != nil {
			e.UserID = *user
		}
		e.Latency = time.Duration(latency) * time.Microsecond
		e.Count = int64(count)
		return nil
	})
}

// likePrefix is a LIKE pattern (escape '\\') matching what starts with p.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}
