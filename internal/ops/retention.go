package ops

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Retention is how long latchkey keeps what it records about people, and
// how often the gateway's janitor applies it. Zero fields take the
// defaults; Validate says what is refused.
type Retention struct {
	// Every is how often the gateway runs the janitor (DefaultJanitorEvery).
	Every time.Duration
	// IPs is how long an IP address is kept (DefaultRetainIPs): a session's
	// from its start, a login's from the login, an audit record's from the
	// attempt. After that it is blanked; the rest of the row stays.
	IPs time.Duration
	// Sessions is how long a session is kept once it has ended, expired or
	// revoked (DefaultRetainSessions); until then `sessions list --all`
	// shows it and a gateway can tell its cookie from an unknown one.
	Sessions time.Duration
	// Audit is how long audit records are kept; 0 keeps them for ever.
	// When set, it is at least IPs (as set, or its default).
	Audit time.Duration
}

// Defaults and bounds of Retention.
const (
	DefaultJanitorEvery   = time.Hour
	DefaultRetainIPs      = 30 * 24 * time.Hour
	DefaultRetainSessions = 7 * 24 * time.Hour
	// MinJanitorEvery: the gateway's janitor wakes once a minute.
	MinJanitorEvery = time.Minute
	// MinRetainIPs keeps the cut well behind the audit writer, which
	// writes a record within seconds of its time: the store blanks the
	// audit trail from where its last run stopped (see store.Retention).
	MinRetainIPs = time.Hour
)

// WithDefaults is r with its zero fields set to the defaults.
func (r Retention) WithDefaults() Retention {
	if r.Every == 0 {
		r.Every = DefaultJanitorEvery
	}
	if r.IPs == 0 {
		r.IPs = DefaultRetainIPs
	}
	if r.Sessions == 0 {
		r.Sessions = DefaultRetainSessions
	}
	return r
}

// Validate refuses a retention that cannot be meant: negative or too short
// durations, and audit records kept less long than IP addresses, which
// would delete every record before its address is due to go and keep the
// addresses of sessions and logins longer than the records that explain
// them. Errors name the Caddyfile's settings.
func (r Retention) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"every", r.Every}, {"retain_ip", r.IPs}, {"retain_sessions", r.Sessions}, {"retain_audit", r.Audit}} {
		if d.v < 0 {
			return fmt.Errorf("retention %s %s: a duration cannot be negative", d.name, FormatDuration(d.v))
		}
	}
	e := r.WithDefaults()
	switch {
	case e.Every < MinJanitorEvery:
		return fmt.Errorf("retention every %s: the janitor runs at most once a minute; use at least 1m", FormatDuration(e.Every))
	case e.IPs < MinRetainIPs:
		return fmt.Errorf("retention retain_ip %s: keep addresses at least 1h (the audit trail is written a little behind the requests)", FormatDuration(e.IPs))
	case e.Audit > 0 && e.Audit < e.IPs:
		ip := FormatDuration(e.IPs)
		if r.IPs == 0 {
			ip += " (the default)"
		}
		return fmt.Errorf("retention retain_audit %s is shorter than retain_ip %s: IP addresses of sessions and logins would outlive the audit trail; set retain_ip to %s or less, or keep audit records longer",
			FormatDuration(e.Audit), ip, FormatDuration(e.Audit))
	}
	return nil
}

// Policy is what a run at now removes.
func (r Retention) Policy(now time.Time) store.RetainPolicy {
	r = r.WithDefaults()
	p := store.RetainPolicy{SessionsEndedBefore: now.Add(-r.Sessions), IPsBefore: now.Add(-r.IPs)}
	if r.Audit > 0 {
		p.AuditBefore = now.Add(-r.Audit)
	}
	return p
}

// JanitorRun is what one run of the janitor did, for the gateway's log and
// the CLI (whose --json prints it as is: its names are a contract).
type JanitorRun struct {
	SessionsDeleted     int      `json:"sessions_deleted"`
	SessionIPsBlanked   int      `json:"session_ips_blanked"`
	LoginIPsBlanked     int      `json:"login_ips_blanked"`
	AuditIPsBlanked     int      `json:"audit_ips_blanked"`
	AuditDeleted        int      `json:"audit_deleted"`
	SessionsEndedBefore Time     `json:"sessions_ended_before"`
	IPsBefore           Time     `json:"ips_before"`
	AuditBefore         Time     `json:"audit_before"` // null: audit records are kept
	Took                Duration `json:"took"`
}

// Duration is a time.Duration written in JSON as text ("1.5s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%q", time.Duration(d).String()), nil
}

// RunJanitor applies r once at now, the clock the caller gives (the
// gateway's schedule, the CLI, a test's injected one), and reports what it
// removed. On an error it reports what the finished batches removed, which
// stays removed.
func RunJanitor(ctx context.Context, st store.Retention, r Retention, now time.Time) (JanitorRun, error) {
	if err := r.Validate(); err != nil {
		return JanitorRun{}, err
	}
	p := r.Policy(now)
	start := time.Now()
	res, err := st.Retain(ctx, p)
	run := JanitorRun{
		SessionsDeleted: res.SessionsDeleted, SessionIPsBlanked: res.SessionIPsBlanked, LoginIPsBlanked: res.LoginIPsBlanked,
		AuditIPsBlanked: res.AuditIPsBlanked, AuditDeleted: res.AuditDeleted,
		SessionsEndedBefore: At(p.SessionsEndedBefore), IPsBefore: At(p.IPsBefore), AuditBefore: At(p.AuditBefore),
		Took: Duration(time.Since(start)),
	}
	if err != nil {
		return run, fmt.Errorf("janitor: %w", err)
	}
	return run, nil
}

// FormatDuration writes d as a Caddyfile would: whole days as "30d", else as
// time.Duration does without zero tails ("1h30m", "2h").
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d != 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
