package ops

import (
	"context"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// AuditQuery is the audit filter as the CLI and the admin API take it.
type AuditQuery struct {
	// Since is a duration back from now: 15m, 1h, 7d.
	Since   string
	User    string // email or id
	Kind    string
	Outcome string // accepted or refused
	Limit   int
}

// Audit lists audit records, newest first.
func (o *Ops) Audit(ctx context.Context, q AuditQuery) ([]store.AuditEvent, error) {
	f := store.AuditFilter{Kind: q.Kind, Outcome: q.Outcome, Limit: q.Limit}
	if q.Since != "" {
		d, err := ParseDuration(q.Since)
		if err != nil || d <= 0 {
			return nil, inputErr("since: bad duration %q (want e.g. 15m, 1h, 7d)", q.Since)
		}
		f.Since = o.now().Add(-d)
	}
	if q.Outcome != "" && q.Outcome != store.OutcomeAccepted && q.Outcome != store.OutcomeRefused {
		return nil, inputErr("outcome: %q is not accepted or refused", q.Outcome)
	}
	if q.Limit < 0 {
		return nil, inputErr("limit: %d is negative", q.Limit)
	}
	if q.User != "" {
		u, err := o.ResolveUser(ctx, q.User, "")
		if err != nil {
			return nil, err
		}
		f.UserID = u.ID
	}
	return o.Store.Audit(ctx, f)
}
