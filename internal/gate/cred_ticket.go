package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/headerjson"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// Ticket headers sent upstream; client-sent copies are always removed.
const (
	TicketIDHeader      = "X-Ticket-ID"
	TicketPlaceHeader   = "X-Ticket-Place"
	TicketPurposeHeader = "X-Ticket-Purpose"
	TicketDataHeader    = "X-Ticket-Data"
	// VarTicketData prefixes each key of a ticket's data.
	VarTicketData = "latchkey.ticket.data."
	VarTicketID   = "latchkey.ticket.id"
	// DefaultTicketLease bounds how long a crashed request keeps a ticket
	// in use; it must outlast the upstream's slowest answer, or a second
	// request could claim the ticket while the first is still running.
	DefaultTicketLease = time.Minute
)

// maxFormBytes bounds what the gateway reads of a form.
const maxFormBytes = 64 << 10

// TicketPair is a place and purpose a route accepts tickets for.
type TicketPair struct{ Place, Purpose string }

// TicketConfig is how a route takes one-shot tickets.
type TicketConfig struct {
	Pairs []TicketPair
	Names ticket.Names
	// StampOn decides from the upstream's status whether the ticket is used
	// up; nil stamps on 2xx and 3xx.
	StampOn func(status int) bool
	Lease   time.Duration
}

func defaultStampOn(status int) bool { return status >= 200 && status < 400 }

func (c TicketConfig) accepts(place, purpose string) bool {
	for _, p := range c.Pairs {
		if p.Place == place && p.Purpose == purpose {
			return true
		}
	}
	return false
}

var ticketStateStatus = map[string]int{
	store.TicketUsed:    http.StatusGone,
	store.TicketExpired: http.StatusGone,
	store.TicketRevoked: http.StatusGone,
	store.TicketInUse:   http.StatusConflict,
}

// ticketCredential is a one-shot ticket: check the password (at a cost that
// does not depend on whether the ticket exists), claim the ticket
// atomically, and once the upstream has answered stamp it used if the
// upstream succeeded or give it back if not.
type ticketCredential struct{ g *Gate }

type foundTicket struct {
	creds ticket.Credentials
	found bool
	err   error
	id    string // the client's uuid string, bounded
}

func (c *ticketCredential) Kind() string { return KindTicket }

// Present: a ticket route without sessions takes every request as a ticket
// attempt, so that a missing ticket is refused as one.
func (c *ticketCredential) Present(rq *Request) bool {
	creds, found, err := ticket.FromRequest(rq.R, c.g.cfg.Tickets.Names, maxFormBytes)
	if !found && err == nil && c.g.session != nil {
		return false
	}
	// The uuid is the client's string until it is found: bound what it can
	// put into the audit trail and the throttle's table.
	id := creds.UUID
	if len(id) > 64 {
		id = id[:64]
	}
	rq.Found = &foundTicket{creds: creds, found: found, err: err, id: id}
	if found || err != nil {
		rq.Ev.CredentialID = id
	}
	return true
}

func (c *ticketCredential) ThrottleKey(rq *Request) string {
	return rq.Found.(*foundTicket).id
}

func (c *ticketCredential) Use(rq *Request) Outcome {
	g, r := c.g, rq.R
	ft := rq.Found.(*foundTicket)
	switch {
	case ft.err != nil:
		return refused(http.StatusBadRequest, "bad_request")
	case !ft.found:
		return Outcome{Refused: &Refusal{Status: http.StatusUnauthorized, Reason: "missing", Free: true}}
	}
	creds := ft.creds
	var t *store.Ticket
	if ticket.ValidUUID(creds.UUID) {
		var err error
		t, err = g.d.Store.Ticket(r.Context(), creds.UUID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			g.d.Logger.Error("looking up ticket", zap.Error(err))
			return storeError()
		}
	}
	// Always checked, also for an unknown uuid, so both cost the same.
	if !g.d.Tickets.Check(t, creds.Password) {
		if t == nil {
			return refused(http.StatusForbidden, "unknown")
		}
		return refused(http.StatusForbidden, "bad_password")
	}
	rq.Ev.UserID = t.UserID
	if !g.cfg.Tickets.accepts(t.Place, t.Purpose) {
		return refused(http.StatusForbidden, "wrong_place")
	}
	now := g.d.Now()
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) && (t.State == store.TicketValid || t.State == store.TicketInUse) {
		t.State = store.TicketExpired
	}
	if t.State == store.TicketInUse && !t.LeaseUntil.After(now) {
		t.State = store.TicketValid // a lapsed claim: the guest may retry
	}
	if status, ok := ticketStateStatus[t.State]; ok {
		return Outcome{Refused: &Refusal{Status: status, Reason: t.State, Free: true}}
	}

	// The credentials go no further than the gateway.
	if err := ticket.Strip(r, g.cfg.Tickets.Names); err != nil {
		return refused(http.StatusBadRequest, "bad_request")
	}
	lease := now.Add(g.cfg.Tickets.Lease)
	ev := &rq.Ev
	ev.Outcome, ev.Reason = store.OutcomeAccepted, "claimed"
	g.d.Audit.Describe(ev)
	if err := g.d.Store.ClaimTicket(r.Context(), t.UUID, now, lease, ev); err != nil {
		ev.ID = 0
		if !errors.Is(err, store.ErrConflict) {
			g.d.Logger.Error("claiming ticket", zap.String("ticket", t.UUID), zap.Error(err))
			return storeError()
		}
		reason := store.TicketInUse
		if again, err := g.d.Store.Ticket(r.Context(), t.UUID); err == nil && again.State != store.TicketInUse {
			reason = again.State
			if reason == store.TicketValid {
				reason = store.TicketExpired // claimable state but refused: past its expiry
			}
		}
		return Outcome{Refused: &Refusal{Status: ticketStateStatus[reason], Reason: reason, Free: true}}
	}

	data := t.Data
	if len(data) == 0 {
		data = []byte("{}")
	}
	out := Outcome{
		UserID: t.UserID,
		Header: http.Header{
			TicketIDHeader:      {t.UUID},
			TicketPlaceHeader:   {t.Place},
			TicketPurposeHeader: {t.Purpose},
			TicketDataHeader:    {headerjson.Escape(data)},
		},
		Vars:     map[string]string{VarTicketID: t.UUID},
		Recorded: true,
	}
	var m map[string]any
	if json.Unmarshal(data, &m) == nil {
		for k, v := range m {
			out.Vars[VarTicketData+k] = fmt.Sprint(v)
		}
	}
	stampOn := g.cfg.Tickets.StampOn
	if stampOn == nil {
		stampOn = defaultStampOn
	}
	auditID := ev.ID
	var stamped bool
	out.Finish = func(status int, latency time.Duration) {
		// Not the request's context: a client that hung up must not leave
		// the ticket claimed until the lease lapses.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		stamp := stampOn(status)
		at, ip, ua := g.d.Now(), rq.Env.ClientIP, r.UserAgent()
		finish := func(ctx context.Context) error {
			return g.d.Store.FinishTicket(ctx, t.UUID, lease, stamp, at, ip, ua, status, auditID, latency)
		}
		err := finish(ctx)
		switch {
		case err == nil:
			stamped = stamp
		case errors.Is(err, store.ErrConflict):
			// The claim lapsed and was taken over: not this request's to finish.
			g.d.Logger.Warn("finishing ticket claim: the claim was taken over", zap.String("ticket", t.UUID), zap.Int("status", status))
		default:
			// The store is away. The upstream has answered, so the ticket
			// must be stamped (or given back) as soon as it returns, before
			// the lapsed claim lets it be used again: keep trying, in the
			// background.
			g.d.Logger.Warn("finishing ticket claim; retrying until the store answers", zap.String("ticket", t.UUID), zap.Int("status", status), zap.Error(err))
			stamped = stamp // it will be, or the claim was taken over
			go retryFinish(finish, g.d.Logger.With(zap.String("ticket", t.UUID)))
		}
	}
	// A claim given back (the upstream failed) took no use.
	out.Consumed = func(int) bool { return stamped }
	return out
}

// finishRetries bounds how long a ticket's finish is retried while the
// store is away; past it the claim's lease has long lapsed anyway.
const finishRetries = 30 * time.Minute

// retryFinish runs finish until it is done or the claim was taken over,
// every 100 ms at first, backing off to 2 s.
func retryFinish(finish func(context.Context) error, log *zap.Logger) {
	deadline := time.Now().Add(finishRetries)
	for wait := 100 * time.Millisecond; time.Now().Before(deadline); wait = min(2*wait, 2*time.Second) {
		time.Sleep(wait)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := finish(ctx)
		cancel()
		switch {
		case err == nil:
			log.Info("finished ticket claim after the store came back")
			return
		case errors.Is(err, store.ErrConflict):
			log.Warn("finishing ticket claim: the claim was taken over while the store was away")
			return
		}
	}
	log.Error("gave up finishing ticket claim")
}

func refused(status int, reason string) Outcome {
	return Outcome{Refused: &Refusal{Status: status, Reason: reason}}
}

// storeError fails closed: the store could not say, so nothing passes.
func storeError() Outcome {
	return Outcome{Refused: &Refusal{Status: http.StatusServiceUnavailable, Reason: "store_error", Free: true}}
}
