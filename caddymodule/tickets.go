package caddymodule

import (
	"fmt"
	"github.com/latchkeyhq/latchkey/internal/password"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/gate"
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

// passwordParams are the same argon2id settings for users' passwords.
func (c *Argon2Config) passwordParams() password.Params {
	t := c.params()
	p := password.DefaultParams
	p.Time, p.MemoryKiB, p.Threads = t.Time, t.MemoryKiB, t.Threads
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
