package ops

import (
	"encoding/json"

	"github.com/latchkeyhq/latchkey/internal/password"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// The *JSON types are how rows look in the CLI's --json output and on the
// admin API. Their field names are a contract with scripts: change them only
// by adding.

// UserJSON is a user.
type UserJSON struct {
	ID             int64    `json:"id"`
	Site           string   `json:"site"`
	Email          string   `json:"email"`
	Name           string   `json:"name"`
	Phone          string   `json:"phone"`
	Active         bool     `json:"active"`
	Roles          []string `json:"roles"`
	CreatedAt      Time     `json:"created_at"`
	CurrentLoginAt Time     `json:"current_login_at"`
	CurrentLoginIP string   `json:"current_login_client_ip"`
	LastLoginAt    Time     `json:"last_login_at"`
	LastLoginIP    string   `json:"last_login_client_ip"`
	LoginCount     int64    `json:"login_count"`
	// PasswordScheme names the scheme of the user's password hash (see
	// password.Scheme), "unknown" for one it cannot name; absent without
	// a password. The hash itself is never shown.
	PasswordScheme string `json:"password_scheme"`
}

// ToUserJSON is u's JSON form; its roles are as RoleString writes them.
func ToUserJSON(u *store.User) UserJSON {
	roles := []string{}
	for _, r := range u.Roles {
		roles = append(roles, RoleString(u, r))
	}
	return UserJSON{
		ID: u.ID, Site: u.Site, Email: u.Email, Name: u.Name, Phone: u.Phone,
		Active: u.Active, Roles: roles, CreatedAt: At(u.CreatedAt),
		CurrentLoginAt: At(u.CurrentLoginAt), CurrentLoginIP: u.CurrentLoginIP,
		LastLoginAt: At(u.LastLoginAt), LastLoginIP: u.LastLoginIP, LoginCount: u.LoginCount,
		PasswordScheme: passwordScheme(u.PasswordHash),
	}
}

func passwordScheme(hash string) string {
	if hash == "" {
		return ""
	}
	s, err := password.Scheme(hash)
	if err != nil {
		return "unknown"
	}
	return s
}

// SessionJSON is a gateway session (never its token).
type SessionJSON struct {
	ID           string `json:"id"`
	UserID       int64  `json:"user_id"`
	CreatedAt    Time   `json:"created_at"`
	LastSeenAt   Time   `json:"last_seen_at"`
	ExpiresAt    Time   `json:"expires_at"`
	RevokedAt    Time   `json:"revoked_at"`
	ClientIP     string `json:"client_ip"`
	UserAgent    string `json:"user_agent"`
	Kind         string `json:"kind"`
	CredentialID string `json:"credential_id"`
}

// ToSessionJSON is s's JSON form.
func ToSessionJSON(s *store.Session) SessionJSON {
	return SessionJSON{
		ID: s.ID, UserID: s.UserID, CreatedAt: At(s.CreatedAt), LastSeenAt: At(s.LastSeenAt),
		ExpiresAt: At(s.ExpiresAt), RevokedAt: At(s.RevokedAt), ClientIP: s.IP, UserAgent: s.UserAgent,
		Kind: s.Kind, CredentialID: s.CredentialID,
	}
}

// AuditJSON is an audit record.
type AuditJSON struct {
	ID           int64  `json:"id"`
	Time         Time   `json:"time"`
	Kind         string `json:"kind"`
	CredentialID string `json:"credential_id"`
	UserID       int64  `json:"user_id"`
	SessionID    string `json:"session_id"`
	Outcome      string `json:"outcome"`
	Reason       string `json:"reason"`
	Method       string `json:"method"`
	Host         string `json:"host"`
	Path         string `json:"path"`
	Status       int    `json:"status"`
	ClientIP     string `json:"client_ip"`
	UserAgent    string `json:"user_agent"`
	Browser      string `json:"browser"`
	Version      string `json:"browser_version"`
	OS           string `json:"os"`
	Device       string `json:"device"`
	Bot          bool   `json:"bot"`
	LatencyUS    int64  `json:"latency_us"`
	// Count is how many identical refusals the record stands for (a flood
	// within a second is one record); 1 for every other record.
	Count int64 `json:"count"`
}

// ToAuditJSON is e's JSON form.
func ToAuditJSON(e *store.AuditEvent) AuditJSON {
	return AuditJSON{
		ID: e.ID, Time: At(e.Time), Kind: e.Kind, CredentialID: e.CredentialID, UserID: e.UserID,
		SessionID: e.SessionID, Outcome: e.Outcome, Reason: e.Reason, Method: e.Method,
		Host: e.Host, Path: e.Path, Status: e.Status, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
		Browser: e.UABrowser, Version: e.UAVersion, OS: e.UAOS, Device: e.UADevice, Bot: e.UABot,
		LatencyUS: e.Latency.Microseconds(), Count: max(e.Count, 1),
	}
}

// InviteJSON is an invite. The code appears only in the answer to its
// creation (or to a resend that could not mail it).
type InviteJSON struct {
	ID          int64  `json:"id"`
	Site        string `json:"site"`
	Email       string `json:"email"`
	Name        string `json:"name"`
	Phone       string `json:"phone"`
	CreatedAt   Time   `json:"created_at"`
	CreatedBy   string `json:"created_by"`
	UserID      int64  `json:"user_id"`
	FirstUsedAt Time   `json:"first_used_at"`
	LastUsedAt  Time   `json:"last_used_at"`
	UseCount    int64  `json:"use_count"`
	RevokedAt   Time   `json:"revoked_at"`
	SentAt      Time   `json:"sent_at"`
	SendError   string `json:"send_error"`
	// State is valid (never used, in its usage window), active (used, still
	// a login code), expired or revoked, by the rules of its site's
	// handler; ExpiresAt is when it stops (or stopped) working.
	State     string `json:"state"`
	ExpiresAt Time   `json:"expires_at"`
	Code      string `json:"code,omitempty"`
	LoginURL  string `json:"login_url,omitempty"`
	Sent      *bool  `json:"sent,omitempty"`
}

// ToInviteJSON is inv's JSON form, without code.
func ToInviteJSON(inv *store.Invite) InviteJSON {
	return InviteJSON{
		ID: inv.ID, Site: inv.Site, Email: inv.Email, Name: inv.Name, Phone: inv.Phone,
		CreatedAt: At(inv.CreatedAt), CreatedBy: inv.CreatedBy, UserID: inv.UserID,
		FirstUsedAt: At(inv.FirstUsedAt), LastUsedAt: At(inv.LastUsedAt), UseCount: inv.UseCount,
		RevokedAt: At(inv.RevokedAt), SentAt: At(inv.SentAt), SendError: inv.SendError,
	}
}

// LinkJSON is a signed link's record. The URL appears only in the answer
// to its minting.
type LinkJSON struct {
	JTI         string `json:"jti"`
	Site        string `json:"site"`
	UserID      int64  `json:"user_id"`
	Target      string `json:"target"`
	Mode        string `json:"mode"`
	MaxUses     int    `json:"max_uses"`
	Uses        int    `json:"uses"`
	CreatedAt   Time   `json:"created_at"`
	CreatedBy   string `json:"created_by"`
	ExpiresAt   Time   `json:"expires_at"`
	FirstUsedAt Time   `json:"first_used_at"`
	LastUsedAt  Time   `json:"last_used_at"`
	RevokedAt   Time   `json:"revoked_at"`
	URL         string `json:"url,omitempty"` // only when minted
	// Headers, when a request-mode link is minted, are the mail headers
	// that carry it: List-Unsubscribe and List-Unsubscribe-Post.
	Headers map[string]string `json:"headers,omitempty"`
	UsesLog []AuditJSON       `json:"uses_log,omitempty"`
}

// ToLinkJSON is l's JSON form.
func ToLinkJSON(l *store.Link) LinkJSON {
	return LinkJSON{
		JTI: l.JTI, Site: l.Site, UserID: l.UserID, Target: l.Target, Mode: l.Mode, MaxUses: l.MaxUses, Uses: l.Uses,
		CreatedAt: At(l.CreatedAt), CreatedBy: l.CreatedBy, ExpiresAt: At(l.ExpiresAt),
		FirstUsedAt: At(l.FirstUsedAt), LastUsedAt: At(l.LastUsedAt), RevokedAt: At(l.RevokedAt),
	}
}

// TicketJSON is a one-shot ticket. The password appears only in the answer
// to its creation.
type TicketJSON struct {
	UUID      string          `json:"uuid"`
	Place     string          `json:"place"`
	Purpose   string          `json:"purpose"`
	State     string          `json:"state"`
	CreatedAt Time            `json:"created_at"`
	ExpiresAt Time            `json:"expires_at"`
	UserID    int64           `json:"user_id"`
	Data      json.RawMessage `json:"data"`
	UsedAt    Time            `json:"used_at"`
	UseIP     string          `json:"use_client_ip"`
	UseUA     string          `json:"use_user_agent"`
	UseStatus int             `json:"use_status"`
	RevokedAt Time            `json:"revoked_at"`
	Password  string          `json:"password,omitempty"`
	URL       string          `json:"url,omitempty"`
	Attempts  []AuditJSON     `json:"attempts,omitempty"`
}

// ToTicketJSON is t's JSON form, without password.
func ToTicketJSON(t *store.Ticket) TicketJSON {
	data := json.RawMessage(t.Data)
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return TicketJSON{
		UUID: t.UUID, Place: t.Place, Purpose: t.Purpose, State: t.State, CreatedAt: At(t.CreatedAt),
		ExpiresAt: At(t.ExpiresAt), UserID: t.UserID, Data: data, UsedAt: At(t.UsedAt),
		UseIP: t.UseIP, UseUA: t.UseUserAgent, UseStatus: t.UseStatus, RevokedAt: At(t.RevokedAt),
	}
}

// MailJSON is an outbox mail: the envelope, never the bodies, which hold a
// live credential until sent.
type MailJSON struct {
	ID            int64  `json:"id"`
	Kind          string `json:"kind"`
	Site          string `json:"site"`
	Ref           string `json:"ref"`
	To            string `json:"to"`
	Subject       string `json:"subject"`
	State         string `json:"state"`
	Attempts      int    `json:"attempts"`
	LastError     string `json:"last_error"`
	CreatedAt     Time   `json:"created_at"`
	NextAttemptAt Time   `json:"next_attempt_at"`
	ExpiresAt     Time   `json:"expires_at"`
	SentAt        Time   `json:"sent_at"`
	FailedAt      Time   `json:"failed_at"`
}

// ToMailJSON is m's JSON form.
func ToMailJSON(m *store.Mail) MailJSON {
	j := MailJSON{
		ID: m.ID, Kind: m.Kind, Site: m.Site, Ref: m.Ref, To: m.To, Subject: m.Subject, State: m.State,
		Attempts: m.Attempts, LastError: m.LastError, CreatedAt: At(m.CreatedAt), ExpiresAt: At(m.ExpiresAt),
		SentAt: At(m.SentAt), FailedAt: At(m.FailedAt),
	}
	if m.State == store.MailQueued {
		j.NextAttemptAt = At(m.NextAttemptAt)
	}
	return j
}

// ToJSON converts store rows to their JSON form.
func ToJSON[T, J any](rows []T, conv func(*T) J) []J {
	out := make([]J, len(rows))
	for i := range rows {
		out[i] = conv(&rows[i])
	}
	return out
}
