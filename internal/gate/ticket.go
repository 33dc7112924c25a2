package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// Ticket headers sent upstream; client-sent copies are always removed.
const (
	TicketIDHeader      = "X-Ticket-ID"
	TicketPlaceHeader   = "X-Ticket-Place"
	TicketPurposeHeader = "X-Ticket-Purpose"
	TicketDataHeader    = "X-Ticket-Data"
	ticketKind          = "ticket"
	// VarTicketData prefixes each key of a ticket's data.
	VarTicketData = "latchkey.ticket.data."
	VarTicketID   = "latchkey.ticket.id"
	// DefaultTicketLease bounds how long a crashed request keeps a ticket
	// in use; it must outlast the upstream's slowest answer, or a second
	// request could claim the ticket while the first is still running.
	DefaultTicketLease = time.Minute
)

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

// serveTicket runs a request on a route that requires a ticket: check the
// password (at a cost that does not depend on whether the ticket exists),
// claim the ticket atomically, proxy, and stamp it used if the upstream
// succeeded or give it back if not.
func (g *Gate) serveTicket(w http.ResponseWriter, r *http.Request, env Env, next Next, start time.Time) error {
	ev := g.event(r, env, start)
	ev.Kind = ticketKind
	creds, found, err := ticket.FromRequest(r, g.cfg.Tickets.Names, maxFormBytes)
	if err != nil {
		ev.Reason = "bad_request"
		return g.refuse(w, r, ev, http.StatusBadRequest, start)
	}
	if !found {
		ev.Reason = "missing"
		return g.refuse(w, r, ev, http.StatusUnauthorized, start)
	}
	// The uuid is the client's string until it is found: bound what it can
	// put into the audit trail and the throttle's table.
	id := creds.UUID
	if len(id) > 64 {
		id = id[:64]
	}
	ev.CredentialID = id
	now := g.d.Now()
	okIP, waitIP := g.d.TicketThrottleIP.Allow(env.ClientIP, now)
	okID, waitID := g.d.TicketThrottleUUID.Allow(id, now)
	if !okIP || !okID {
		ev.Reason = "throttled"
		w.Header().Set("Retry-After", retryAfter(max(waitIP, waitID)))
		return g.refuse(w, r, ev, http.StatusTooManyRequests, start)
	}

	var t *store.Ticket
	if ticket.ValidUUID(creds.UUID) {
		t, err = g.d.Store.Ticket(r.Context(), creds.UUID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			g.d.Logger.Error("looking up ticket", zap.Error(err))
			ev.Reason = "store_error"
			return g.refuse(w, r, ev, http.StatusServiceUnavailable, start)
		}
	}
	// Always checked, also for an unknown uuid, so both cost the same.
	if !g.d.Tickets.Check(t, creds.Password) {
		g.d.TicketThrottleIP.Fail(env.ClientIP, now)
		g.d.TicketThrottleUUID.Fail(id, now)
		ev.Reason = "bad_password"
		if t == nil {
			ev.Reason = "unknown"
		}
		return g.refuse(w, r, ev, http.StatusForbidden, start)
	}
	ev.UserID = t.UserID
	if !g.cfg.Tickets.accepts(t.Place, t.Purpose) {
		ev.Reason = "wrong_place"
		return g.refuse(w, r, ev, http.StatusForbidden, start)
	}
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) && (t.State == store.TicketValid || t.State == store.TicketInUse) {
		t.State = store.TicketExpired
	}
	if t.State == store.TicketInUse && !t.LeaseUntil.After(now) {
		t.State = store.TicketValid // a lapsed claim: the guest may retry
	}
	if status, ok := ticketStateStatus[t.State]; ok {
		ev.Reason = t.State
		return g.refuse(w, r, ev, status, start)
	}

	// The credentials go no further than the gateway.
	if err := ticket.Strip(r, g.cfg.Tickets.Names); err != nil {
		ev.Reason = "bad_request"
		return g.refuse(w, r, ev, http.StatusBadRequest, start)
	}
	lease := now.Add(g.cfg.Tickets.Lease)
	ev.Outcome, ev.Reason = store.OutcomeAccepted, "claimed"
	g.d.Audit.Describe(&ev)
	if err := g.d.Store.ClaimTicket(r.Context(), t.UUID, now, lease, &ev); err != nil {
		ev.Outcome, ev.ID = store.OutcomeRefused, 0
		if !errors.Is(err, store.ErrConflict) {
			g.d.Logger.Error("claiming ticket", zap.String("ticket", t.UUID), zap.Error(err))
			ev.Reason = "store_error"
			return g.refuse(w, r, ev, http.StatusServiceUnavailable, start)
		}
		ev.Reason = store.TicketInUse
		if now2, err := g.d.Store.Ticket(r.Context(), t.UUID); err == nil && now2.State != store.TicketInUse {
			ev.Reason = now2.State
			if ev.Reason == store.TicketValid {
				ev.Reason = store.TicketExpired // claimable state but refused: past its expiry
			}
		}
		return g.refuse(w, r, ev, ticketStateStatus[ev.Reason], start)
	}

	r.Header.Set(TicketIDHeader, t.UUID)
	r.Header.Set(TicketPlaceHeader, t.Place)
	r.Header.Set(TicketPurposeHeader, t.Purpose)
	data := t.Data
	if len(data) == 0 {
		data = []byte("{}")
	}
	r.Header.Set(TicketDataHeader, escapeNonASCII(data))
	if t.UserID != 0 {
		r.Header[g.userKey] = []string{strconv.FormatInt(t.UserID, 10)}
	}
	if env.Vars != nil {
		env.Vars.Set(VarTicketID, t.UUID)
		if t.UserID != 0 {
			env.Vars.Set(VarUserID, strconv.FormatInt(t.UserID, 10))
		}
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			for k, v := range m {
				env.Vars.Set(VarTicketData+k, fmt.Sprint(v))
			}
		}
	}

	sw := &statusWriter{ResponseWriter: w}
	err = next(sw, r)
	status := sw.status
	if err != nil {
		status = g.d.ErrorStatus(err)
	} else if status == 0 {
		status = http.StatusOK
	}
	stampOn := g.cfg.Tickets.StampOn
	if stampOn == nil {
		stampOn = defaultStampOn
	}
	// Not the request's context: a client that hung up must not leave the
	// ticket claimed until the lease lapses.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if ferr := g.d.Store.FinishTicket(ctx, t.UUID, lease, stampOn(status), g.d.Now(), env.ClientIP, r.UserAgent(), status, ev.ID, g.d.Now().Sub(start)); ferr != nil {
		g.d.Logger.Warn("finishing ticket claim", zap.String("ticket", t.UUID), zap.Int("status", status), zap.Error(ferr))
	}
	return err
}
