package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Store operations timed in caddy_latchkey_store_duration_seconds{op}.
const (
	OpSessionLookup = "session_lookup"
	OpSessionTouch  = "session_touch"
	OpSessionCreate = "session_create"
	OpInviteLookup  = "invite_lookup"
	OpInviteRedeem  = "invite_redeem"
	OpLinkLookup    = "link_lookup"
	OpLinkUse       = "link_use"
	OpTicketLookup  = "ticket_lookup"
	OpTicketClaim   = "ticket_claim"
	OpTicketFinish  = "ticket_finish"
	OpAuditStatus   = "audit_status"
)

// Store returns st with its request-path calls timed (the Op… operations);
// every other call goes straight to st. A store that can wait for changes
// (store.ChangeWaiter) still can through the result.
func (m *Metrics) Store(st store.Store) store.Store {
	t := &timedStore{
		Store:         st,
		sessionLookup: m.storeOp(OpSessionLookup),
		sessionTouch:  m.storeOp(OpSessionTouch),
		sessionCreate: m.storeOp(OpSessionCreate),
		inviteLookup:  m.storeOp(OpInviteLookup),
		inviteRedeem:  m.storeOp(OpInviteRedeem),
		linkLookup:    m.storeOp(OpLinkLookup),
		linkUse:       m.storeOp(OpLinkUse),
		ticketLookup:  m.storeOp(OpTicketLookup),
		ticketClaim:   m.storeOp(OpTicketClaim),
		ticketFinish:  m.storeOp(OpTicketFinish),
		auditStatus:   m.storeOp(OpAuditStatus),
	}
	if w, ok := st.(changeWaiter); ok {
		return &timedWaitingStore{timedStore: t, w: w}
	}
	return t
}

// changeWaiter is store.ChangeWaiter, spelled out so that the decorator
// forwards it whatever the store package calls it.
type changeWaiter interface {
	WaitChange(ctx context.Context) error
}

type timedWaitingStore struct {
	*timedStore
	w changeWaiter
}

func (t *timedWaitingStore) WaitChange(ctx context.Context) error { return t.w.WaitChange(ctx) }

// timedStore is a store.Store whose hot calls are timed; the children are
// resolved once, so timing a call allocates nothing.
type timedStore struct {
	store.Store
	sessionLookup, sessionTouch, sessionCreate prometheus.Observer
	inviteLookup, inviteRedeem                 prometheus.Observer
	linkLookup, linkUse                        prometheus.Observer
	ticketLookup, ticketClaim, ticketFinish    prometheus.Observer
	auditStatus                                prometheus.Observer
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

func (t *timedStore) SessionByTokenHash(ctx context.Context, hash []byte) (*store.SessionUser, error) {
	defer since(t.sessionLookup, time.Now())
	return t.Store.SessionByTokenHash(ctx, hash)
}

func (t *timedStore) TouchSession(ctx context.Context, id string, at time.Time) error {
	defer since(t.sessionTouch, time.Now())
	return t.Store.TouchSession(ctx, id, at)
}

func (t *timedStore) CreateSession(ctx context.Context, s *store.Session) error {
	defer since(t.sessionCreate, time.Now())
	return t.Store.CreateSession(ctx, s)
}

func (t *timedStore) InviteByCodeHash(ctx context.Context, hash []byte) (*store.Invite, error) {
	defer since(t.inviteLookup, time.Now())
	return t.Store.InviteByCodeHash(ctx, hash)
}

func (t *timedStore) RedeemInvite(ctx context.Context, r *store.Redemption) (*store.User, error) {
	defer since(t.inviteRedeem, time.Now())
	return t.Store.RedeemInvite(ctx, r)
}

func (t *timedStore) Link(ctx context.Context, jti string) (*store.Link, error) {
	defer since(t.linkLookup, time.Now())
	return t.Store.Link(ctx, jti)
}

func (t *timedStore) UseLink(ctx context.Context, u *store.LinkUse) (int, error) {
	defer since(t.linkUse, time.Now())
	return t.Store.UseLink(ctx, u)
}

func (t *timedStore) Ticket(ctx context.Context, uuid string) (*store.Ticket, error) {
	defer since(t.ticketLookup, time.Now())
	return t.Store.Ticket(ctx, uuid)
}

func (t *timedStore) ClaimTicket(ctx context.Context, uuid string, at, leaseUntil time.Time, audit *store.AuditEvent) error {
	defer since(t.ticketClaim, time.Now())
	return t.Store.ClaimTicket(ctx, uuid, at, leaseUntil, audit)
}

func (t *timedStore) FinishTicket(ctx context.Context, uuid string, leaseUntil time.Time, stamp bool, at time.Time, ip, userAgent string, status int, auditID int64, latency time.Duration) error {
	defer since(t.ticketFinish, time.Now())
	return t.Store.FinishTicket(ctx, uuid, leaseUntil, stamp, at, ip, userAgent, status, auditID, latency)
}

func (t *timedStore) SetAuditStatus(ctx context.Context, id int64, status int, latency time.Duration) error {
	defer since(t.auditStatus, time.Now())
	return t.Store.SetAuditStatus(ctx, id, status, latency)
}
