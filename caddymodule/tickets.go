package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

// TicketsConfig is how a route takes one-shot tickets.
type TicketsConfig struct {
	// Place and purpose pairs the route accepts.
	Accept []TicketPair `json:"accept"`
	// Query and form parameter names. Default uuid and password.
	UUIDParam     string `json:"uuid_param,omitempty"`
	PasswordParam string `json:"password_param,omitempty"`
	// Upstream statuses that use the ticket up: "2xx", "3xx", … or exact
	// codes. Default 2xx and 3xx; any other answer gives the ticket back.
	StampOn []string `json:"stamp_on,omitempty"`
	// How long a claim holds while the upstream works. Default 1m.
	Lease caddy.Duration `json:"lease,omitempty"`
	// Failed attempts per client IP, and per ticket. Default 10 a minute.
	Throttle *ThrottleConfig `json:"throttle,omitempty"`
	// Other credentials the route also takes: "session", "link", "invite".
	// A ticket route takes nothing else unless listed here.
	Also []string `json:"also,omitempty"`
}

func (c *TicketsConfig) also(kind string) bool {
	if c == nil {
		return false
	}
	for _, k := range c.Also {
		if k == kind {
			return true
		}
	}
	return false
}

// TicketPair is a place and a purpose.
type TicketPair struct {
	Place   string `json:"place"`
	Purpose string `json:"purpose"`
}

// Argon2Config tunes the hashing of ticket passwords a person chose.
type Argon2Config struct {
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
}

func (c *Argon2Config) params() ticket.Argon2Params {
	p := ticket.DefaultArgon2Params
	if c == nil {
		return p
	}
	if c.Time != 0 {
		p.Time = c.Time
	}
	if c.MemoryKiB != 0 {
		p.MemoryKiB = c.MemoryKiB
	}
	if c.Threads != 0 {
		p.Threads = c.Threads
	}
	return p
}

// stampOn compiles the stamp_on list.
func stampOn(list []string) (func(int) bool, error) {
	if len(list) == 0 {
		return nil, nil
	}
	var classes [6]bool
	exact := map[int]bool{}
	for _, s := range list {
		switch {
		case len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5':
			classes[s[0]-'0'] = true
		default:
			var n int
			if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 100 || n > 599 || fmt.Sprint(n) != s {
				return nil, fmt.Errorf("stamp_on: %q is not a status like 200 or a class like 2xx", s)
			}
			exact[n] = true
		}
	}
	return func(status int) bool {
		return exact[status] || (status >= 100 && status < 600 && classes[status/100])
	}, nil
}

func (c *TicketsConfig) gateConfig() (gate.TicketConfig, error) {
	tc := gate.TicketConfig{
		Names: ticket.Names{UUID: c.UUIDParam, Password: c.PasswordParam},
		Lease: time.Duration(c.Lease),
	}
	for _, p := range c.Accept {
		tc.Pairs = append(tc.Pairs, gate.TicketPair{Place: p.Place, Purpose: p.Purpose})
	}
	var err error
	tc.StampOn, err = stampOn(c.StampOn)
	return tc, err
}

// ticketJSON is how a ticket looks in --json output and on the admin API.
// The password appears only in the answer to its creation.
type ticketJSON struct {
	UUID      string          `json:"uuid"`
	Place     string          `json:"place"`
	Purpose   string          `json:"purpose"`
	State     string          `json:"state"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
	UserID    int64           `json:"user_id,omitempty"`
	Data      json.RawMessage `json:"data"`
	UsedAt    *time.Time      `json:"used_at,omitempty"`
	UseIP     string          `json:"use_ip,omitempty"`
	UseUA     string          `json:"use_user_agent,omitempty"`
	UseStatus int             `json:"use_status,omitempty"`
	RevokedAt *time.Time      `json:"revoked_at,omitempty"`
	Password  string          `json:"password,omitempty"`
	URL       string          `json:"url,omitempty"`
	Attempts  []auditJSON     `json:"attempts,omitempty"`
}

func toTicketJSON(t *store.Ticket) ticketJSON {
	data := json.RawMessage(t.Data)
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return ticketJSON{
		UUID: t.UUID, Place: t.Place, Purpose: t.Purpose, State: t.State, CreatedAt: t.CreatedAt,
		ExpiresAt: optTime(t.ExpiresAt), UserID: t.UserID, Data: data, UsedAt: optTime(t.UsedAt),
		UseIP: t.UseIP, UseUA: t.UseUserAgent, UseStatus: t.UseStatus, RevokedAt: optTime(t.RevokedAt),
	}
}

// newTickets is the input for creating tickets.
type newTickets struct {
	Place    string         `json:"place"`
	Purpose  string         `json:"purpose"`
	Password string         `json:"password,omitempty"` // chosen by a person; default generated
	Expires  string         `json:"expires,omitempty"`  // duration from now
	User     string         `json:"user,omitempty"`     // email or id
	Data     map[string]any `json:"data,omitempty"`
	URL      string         `json:"url,omitempty"`
	Count    int            `json:"count,omitempty"` // default 1
}

const maxTicketBatch = 10000

func (o ops) hasher() (*ticket.Hasher, error) {
	if o.tickets != nil {
		return o.tickets, nil
	}
	return ticket.NewHasher(o.secret, o.app.Argon2.params())
}

func validName(s string) bool {
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

// createTickets makes in.Count tickets and returns them with their
// passwords (shown once) and, with a URL, the full links.
func (o ops) createTickets(ctx context.Context, in newTickets) ([]ticketJSON, error) {
	if !validName(in.Place) || !validName(in.Purpose) {
		return nil, inputErr("place and purpose are required words without spaces, e.g. --place louvre --purpose visit")
	}
	n := in.Count
	if n == 0 {
		n = 1
	}
	if n < 0 || n > maxTicketBatch {
		return nil, inputErr("count %d is out of range 1 to %d", n, maxTicketBatch)
	}
	now := o.now()
	var expires time.Time
	if in.Expires != "" {
		d, err := caddy.ParseDuration(in.Expires)
		if err != nil || d <= 0 {
			return nil, inputErr("expires: bad duration %q (want e.g. 5d, 12h)", in.Expires)
		}
		expires = now.Add(d)
	}
	var userID int64
	if in.User != "" {
		u, err := o.resolveUser(ctx, in.User, "")
		if err != nil {
			return nil, err
		}
		userID = u.ID
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
	out := make([]ticketJSON, 0, n)
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
		if err := o.st.CreateTicket(ctx, t); err != nil {
			return nil, fmt.Errorf("creating ticket for %s/%s: %w", in.Place, in.Purpose, err)
		}
		tj := toTicketJSON(t)
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

func (o ops) showTicket(ctx context.Context, uuid string) (ticketJSON, error) {
	t, err := o.st.Ticket(ctx, strings.TrimSpace(uuid))
	if errors.Is(err, store.ErrNotFound) {
		return ticketJSON{}, fmt.Errorf("ticket %q: %w", uuid, store.ErrNotFound)
	}
	if err != nil {
		return ticketJSON{}, err
	}
	out := toTicketJSON(t)
	evs, err := o.st.Audit(ctx, store.AuditFilter{Kind: "ticket", CredentialID: t.UUID, Limit: 1000})
	if err != nil {
		return ticketJSON{}, err
	}
	out.Attempts = toJSON(evs, toAuditJSON)
	return out, nil
}

func (o ops) revokeTicket(ctx context.Context, uuid string) error {
	err := o.st.RevokeTicket(ctx, strings.TrimSpace(uuid), o.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("ticket %q: %w", uuid, store.ErrNotFound)
	case errors.Is(err, store.ErrConflict):
		return inputErr("ticket %q is already used, expired or revoked", uuid)
	}
	return err
}
