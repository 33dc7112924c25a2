package invite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// Reasons a code is refused; they appear in the audit trail, never to the
// person typing the code.
const (
	ReasonUnknown       = "unknown"
	ReasonWindowExpired = "window_expired"
	ReasonExpired       = "expired"
	ReasonWrongSite     = "wrong_site"
	ReasonRevoked       = "revoked"
	ReasonInactiveUser  = "inactive_user"
	ReasonThrottled     = "throttled"
	// ReasonExistingAccount: an invite made by staff would sign in an
	// account that exists (it was created after the invite): it never
	// hands one over.
	ReasonExistingAccount = "existing_account"
)

// Kind is the credential kind in sessions and audit records.
const Kind = "invite"

// Rules decide when a code works.
type Rules struct {
	// UsageWindow: an invite not used this long after its creation is
	// refused.
	UsageWindow time.Duration
	// Expiry: after its first use the code keeps logging its user in for
	// this long; 0 makes it one-shot.
	Expiry time.Duration
}

// DefaultRules are the rules when none are configured.
func DefaultRules() Rules {
	return Rules{UsageWindow: DefaultUsageWindow, Expiry: DefaultExpiry}
}

// Check applies the rules to an invite used on site at now. first reports
// whether this would be the registering use.
func (r Rules) Check(inv *store.Invite, site string, now time.Time) (reason string, first bool) {
	switch {
	case !inv.RevokedAt.IsZero():
		return ReasonRevoked, false
	case !SameSite(inv.Site, site):
		return ReasonWrongSite, false
	case inv.FirstUsedAt.IsZero():
		if !now.Before(inv.CreatedAt.Add(r.UsageWindow)) {
			return ReasonWindowExpired, false
		}
		return "", true
	case r.Expiry <= 0 || !now.Before(inv.FirstUsedAt.Add(r.Expiry)):
		return ReasonExpired, false
	}
	return "", false
}

// CodeExpiresAt is when a used code stops logging its user in; zero for a
// one-shot code, whose session lives its normal lifetime.
func (r Rules) CodeExpiresAt(firstUsed time.Time) time.Time {
	if r.Expiry <= 0 {
		return time.Time{}
	}
	return firstUsed.Add(r.Expiry)
}

// SiteOf is the site a request host names: its host name, lower-cased,
// without port.
func SiteOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

// StaffMade reports whether an invite was made on the staff page (by a
// user, "user:<id>"), rather than by an operator (CLI, admin API).
func StaffMade(inv *store.Invite) bool {
	return strings.HasPrefix(inv.CreatedBy, "user:")
}

// SameSite compares an invite's site with the name of the site it is used on.
func SameSite(inviteSite, site string) bool {
	return inviteSite != "" && strings.EqualFold(inviteSite, site)
}

// Service creates and redeems invites.
type Service struct {
	st   store.Store
	hash Hasher
	// previous hash codes under the secrets rotated out, so that codes
	// made before a rotation keep working until they expire or the
	// secrets are retired.
	previous []Hasher
	rules    Rules
	now      func() time.Time
}

// NewService returns a Service; now may be nil for the wall clock. New
// codes are hashed under secret; codes made under the previous secrets
// (newest first) are accepted too.
func NewService(st store.Store, secret []byte, rules Rules, now func() time.Time, previous ...[]byte) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{st: st, hash: NewHasher(secret), rules: rules, now: now}
	for _, p := range previous {
		s.previous = append(s.previous, NewHasher(p))
	}
	return s
}

// byCode looks a normalised code up under the current secret, then under
// each previous one: an unknown code costs one lookup per secret kept.
func (s *Service) byCode(ctx context.Context, code string) (*store.Invite, error) {
	inv, err := s.st.InviteByCodeHash(ctx, s.hash.Hash(code))
	for _, h := range s.previous {
		if !errors.Is(err, store.ErrNotFound) {
			break
		}
		inv, err = s.st.InviteByCodeHash(ctx, h.Hash(code))
	}
	return inv, err
}

// Rules returns the rules in force.
func (s *Service) Rules() Rules { return s.rules }

// Create stores inv with a new code of the given length and returns the
// code, which is not kept anywhere.
func (s *Service) Create(ctx context.Context, inv *store.Invite, length int) (string, error) {
	inv.Site = SiteOf(inv.Site)
	if inv.Site == "" {
		return "", errors.New("creating invite: no site (host name) given")
	}
	for range 5 {
		code, err := Generate(length)
		if err != nil {
			return "", err
		}
		inv.CodeHash = s.hash.Hash(code)
		if inv.CreatedAt.IsZero() {
			inv.CreatedAt = s.now()
		}
		err = s.st.CreateInvite(ctx, inv)
		if errors.Is(err, store.ErrConflict) {
			continue // another invite has this code; draw again
		}
		if err != nil {
			return "", fmt.Errorf("creating invite for %q on %s: %w", inv.Email, inv.Site, err)
		}
		return code, nil
	}
	return "", fmt.Errorf("creating invite for %q on %s: no unused code after 5 tries; use a longer code length", inv.Email, inv.Site)
}

// NewCode gives an invite a new code, for a resend: the old code is not kept,
// so it cannot be sent again, and it stops working.
func (s *Service) NewCode(ctx context.Context, inv *store.Invite, length int) (string, error) {
	if !inv.RevokedAt.IsZero() {
		return "", fmt.Errorf("invite %d is revoked", inv.ID)
	}
	for range 5 {
		code, err := Generate(length)
		if err != nil {
			return "", err
		}
		h := s.hash.Hash(code)
		err = s.st.ReplaceInviteCode(ctx, inv.ID, h)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return "", err
		}
		inv.CodeHash = h
		return code, nil
	}
	return "", fmt.Errorf("invite %d: no unused code after 5 tries; use a longer code length", inv.ID)
}

// Attempt is one use of a code.
type Attempt struct {
	Code string // as typed
	Site string // the name of the site the code is typed on (never the request's Host)
	IP   string
	// Session is the session to start if the code is accepted (from
	// session.Manager.Prepare); Audit its audit record. Both are written
	// with the use in one transaction.
	Session *store.Session
	Audit   *store.AuditEvent
}

// Result of an attempt. Reason is empty when the code was accepted.
type Result struct {
	Reason string
	Invite *store.Invite // nil when the code is unknown
	User   *store.User   // the user logged in
	First  bool          // the use registered the user
}

// Redeem checks a code and, if it may be used, records the use, the login,
// the session and the audit record in one store transaction.
func (s *Service) Redeem(ctx context.Context, a Attempt) (Result, error) {
	code, ok := Normalize(a.Code)
	if !ok {
		return Result{Reason: ReasonUnknown}, nil
	}
	inv, err := s.byCode(ctx, code)
	if errors.Is(err, store.ErrNotFound) {
		return Result{Reason: ReasonUnknown}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("looking up invite code: %w", err)
	}
	// A concurrent first use can win the race between the check and the
	// write; then this use is a later use, so look once more.
	for range 2 {
		now := s.now()
		res := Result{Invite: inv}
		reason, first := s.rules.Check(inv, a.Site, now)
		if reason != "" {
			res.Reason = reason
			return res, nil
		}
		res.First = first
		red := &store.Redemption{InviteID: inv.ID, At: now, IP: a.IP, First: first, Session: a.Session, Audit: a.Audit}
		if first {
			red.CreatedAfter = now.Add(-s.rules.UsageWindow)
			existing, err := s.st.UserByEmail(ctx, inv.Site, inv.Email)
			red.NewUserOnly = StaffMade(inv)
			switch {
			case err == nil && red.NewUserOnly:
				res.Reason = ReasonExistingAccount
				return res, nil
			case err == nil && !existing.Active:
				res.Reason = ReasonInactiveUser
				res.User = existing
				return res, nil
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return Result{}, fmt.Errorf("looking up invited user %q: %w", inv.Email, err)
			}
			red.NewUser = &store.User{Site: inv.Site, Email: inv.Email, Name: inv.Name, Phone: inv.Phone, Active: true, CreatedAt: now}
		} else {
			u, err := s.st.User(ctx, inv.UserID)
			if err != nil {
				return Result{}, fmt.Errorf("looking up user %d of invite %d: %w", inv.UserID, inv.ID, err)
			}
			if !u.Active {
				res.Reason = ReasonInactiveUser
				res.User = u
				return res, nil
			}
			red.FirstUsedAfter = now.Add(-s.rules.Expiry)
		}
		if a.Session != nil && s.rules.Expiry > 0 {
			// The session ends with the code.
			firstUsed := inv.FirstUsedAt
			if first {
				firstUsed = now
			}
			if end := s.rules.CodeExpiresAt(firstUsed); end.Before(a.Session.ExpiresAt) {
				a.Session.ExpiresAt = end
			}
		}
		if a.Audit != nil {
			a.Audit.Kind = Kind
			a.Audit.CredentialID = strconv.FormatInt(inv.ID, 10)
			a.Audit.Outcome = store.OutcomeAccepted
			if first {
				a.Audit.Reason = "registered"
			} else {
				a.Audit.Reason = "login"
			}
		}
		u, err := s.st.RedeemInvite(ctx, red)
		if err == nil {
			res.User = u
			return res, nil
		}
		if errors.Is(err, store.ErrUserExists) {
			return Result{Invite: inv, Reason: ReasonExistingAccount}, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return Result{}, fmt.Errorf("redeeming invite %d: %w", inv.ID, err)
		}
		id := inv.ID
		if inv, err = s.st.Invite(ctx, id); err != nil {
			return Result{}, fmt.Errorf("re-reading invite %d: %w", id, err)
		}
	}
	return Result{Invite: inv, Reason: ReasonExpired}, nil
}
