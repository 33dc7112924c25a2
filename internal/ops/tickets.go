package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// NewTickets is the input for creating tickets.
type NewTickets struct {
	Place    string         `json:"place"`
	Purpose  string         `json:"purpose"`
	Password string         `json:"password,omitempty"` // chosen by a person; default generated
	Expires  string         `json:"expires,omitempty"`  // duration from now
	User     string         `json:"user,omitempty"`     // email or id
	Data     map[string]any `json:"data,omitempty"`
	URL      string         `json:"url,omitempty"`
	Count    int            `json:"count,omitempty"` // default 1
}

// MaxTicketBatch is the most tickets one CreateTickets makes.
const MaxTicketBatch = 10000

// ValidName reports whether s can be a ticket's place or purpose: a word
// without spaces or control characters, at most 100 bytes.
func ValidName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// CreateTickets makes in.Count tickets and returns them with their
// passwords (shown once) and, with a URL, the full links.
func (o *Ops) CreateTickets(ctx context.Context, in NewTickets) ([]TicketJSON, error) {
	if !ValidName(in.Place) || !ValidName(in.Purpose) {
		return nil, inputErr("place and purpose are required words without spaces, e.g. --place louvre --purpose visit")
	}
	if err := o.checkTicketPair(in.Place, in.Purpose); err != nil {
		return nil, err
	}
	n := in.Count
	if n == 0 {
		n = 1
	}
	if n < 0 || n > MaxTicketBatch {
		return nil, inputErr("count %d is out of range 1 to %d", n, MaxTicketBatch)
	}
	now := o.now()
	var expires time.Time
	if in.Expires != "" {
		d, err := ParseDuration(in.Expires)
		if err != nil || d <= 0 {
			return nil, inputErr("expires: bad duration %q (want e.g. 5d, 12h)", in.Expires)
		}
		expires = now.Add(d)
	}
	var userID int64
	if in.User != "" {
		u, err := o.ResolveUser(ctx, in.User, "")
		if err != nil {
			return nil, err
		}
		userID = u.ID
	}
	if err := checkHeaderData("data", in.Data); err != nil {
		return nil, err
	}
	data := []byte("{}")
	if in.Data != nil {
		var err error
		if data, err = json.Marshal(in.Data); err != nil {
			return nil, inputErr("data: %v", err)
		}
	}
	var base *url.URL
	if in.URL != "" {
		u, err := url.Parse(in.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, inputErr("url %q is not an absolute http(s) URL", in.URL)
		}
		base = u
	}
	h, err := o.hasher()
	if err != nil {
		return nil, err
	}
	// A chosen password is hashed once (argon2id is slow on purpose) and
	// shared by the batch.
	var chosenHash []byte
	if in.Password != "" {
		if chosenHash, err = h.HashChosen(in.Password); err != nil {
			return nil, inputErr("password: %v", err)
		}
	}
	out := make([]TicketJSON, 0, n)
	for i := 0; i < n; i++ {
		t := &store.Ticket{
			UUID: ticket.NewUUID(), Place: in.Place, Purpose: in.Purpose, CreatedAt: now,
			ExpiresAt: expires, UserID: userID, Data: data, State: store.TicketValid,
		}
		password := in.Password
		if password == "" {
			if password, err = ticket.GeneratePassword(); err != nil {
				return nil, err
			}
			if t.PasswordHash, err = h.HashGenerated(password); err != nil {
				return nil, err
			}
			t.PasswordKind = ticket.KindKeyed
		} else {
			t.PasswordHash, t.PasswordKind = chosenHash, ticket.KindArgon2id
		}
		if err := o.Store.CreateTicket(ctx, t); err != nil {
			return nil, fmt.Errorf("creating ticket for %s/%s: %w", in.Place, in.Purpose, err)
		}
		tj := ToTicketJSON(t)
		tj.Password = password
		if base != nil {
			u := *base
			q := u.Query()
			q.Set("uuid", t.UUID)
			q.Set("password", password)
			u.RawQuery = q.Encode()
			tj.URL = u.String()
		}
		out = append(out, tj)
	}
	return out, nil
}

// Tickets lists tickets, newest first.
func (o *Ops) Tickets(ctx context.Context, f store.TicketFilter) ([]store.Ticket, error) {
	return o.Store.Tickets(ctx, f)
}

// ShowTicket returns a ticket with every recorded attempt to use it.
func (o *Ops) ShowTicket(ctx context.Context, uuid string) (TicketJSON, error) {
	t, err := o.Store.Ticket(ctx, strings.TrimSpace(uuid))
	if errors.Is(err, store.ErrNotFound) {
		return TicketJSON{}, fmt.Errorf("ticket %q: %w", uuid, store.ErrNotFound)
	}
	if err != nil {
		return TicketJSON{}, err
	}
	out := ToTicketJSON(t)
	evs, err := o.Store.Audit(ctx, store.AuditFilter{Kind: "ticket", CredentialID: t.UUID, Limit: 1000})
	if err != nil {
		return TicketJSON{}, err
	}
	out.Attempts = ToJSON(evs, ToAuditJSON)
	return out, nil
}

// RevokeTicket revokes a ticket that is still valid.
func (o *Ops) RevokeTicket(ctx context.Context, uuid string) (Revoked, error) {
	uuid = strings.TrimSpace(uuid)
	err := o.Store.RevokeTicket(ctx, uuid, o.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Revoked{}, fmt.Errorf("ticket %q: %w", uuid, store.ErrNotFound)
	case errors.Is(err, store.ErrConflict):
		return Revoked{}, inputErr("ticket %q is already used, expired or revoked", uuid)
	case err != nil:
		return Revoked{}, err
	}
	return revoked("ticket", uuid, 1, "revoked ticket %s", uuid), nil
}

// checkTicketPair refuses a place and purpose no route of the config takes:
// such a ticket could never be used. Without a config (no sites known)
// there is nothing to check against.
func (o *Ops) checkTicketPair(place, purpose string) error {
	if len(o.Sites) == 0 {
		return nil
	}
	var accepted []string
	for _, s := range o.Sites {
		for _, p := range s.TicketPairs {
			if p.Place == place && p.Purpose == purpose {
				return nil
			}
			accepted = append(accepted, p.Place+" "+p.Purpose)
		}
	}
	if len(accepted) == 0 {
		return inputErr("no latchkey route of the config takes tickets (add `ticket %s %s` to the latchkey directive of the route that takes them)", place, purpose)
	}
	slices.Sort(accepted)
	return inputErr("no latchkey route takes tickets for place %q and purpose %q; the routes take: %s", place, purpose, strings.Join(slices.Compact(accepted), ", "))
}
