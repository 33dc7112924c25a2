// Package session keeps gateway sessions: the cookie value a browser holds,
// the keyed hash the store keeps instead of it, and the idle and absolute
// lifetimes that end it.
package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// Defaults for a session's lifetimes.
const (
	DefaultIdle     = 2 * time.Hour
	DefaultLifetime = 30 * 24 * time.Hour
)

// tokenLen is the length of a cookie value: 32 random bytes in unpadded
// base64url. Anything else is refused before it costs a hash or a lookup.
const tokenLen = 43

// Reasons a session is refused; they appear in the audit trail.
const (
	ReasonMissing      = "missing"
	ReasonMalformed    = "malformed"
	ReasonUnknown      = "unknown"
	ReasonRevoked      = "revoked"
	ReasonExpired      = "expired"
	ReasonIdle         = "idle"
	ReasonInactiveUser = "inactive_user"
	// ReasonWrongSite: the session was started on another site (a cookie
	// shared by hosts on one name, or copied by hand).
	ReasonWrongSite = "wrong_site"
)

// Config sets a Manager's lifetimes. Zero values take the defaults.
type Config struct {
	// Site is the name of the site the Manager starts and accepts sessions
	// for; a session of any other site is refused.
	Site     string
	Idle     time.Duration
	Lifetime time.Duration
	// TouchEvery bounds how often activity is written back: recording every
	// request would turn each read into a write. Default: Idle/8, at most
	// one minute, so idle expiry is off by at most that much.
	TouchEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.Idle <= 0 {
		c.Idle = DefaultIdle
	}
	if c.Lifetime <= 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.TouchEvery <= 0 {
		c.TouchEvery = min(c.Idle/8, time.Minute)
	}
	return c
}

// Manager starts, checks and ends sessions.
type Manager struct {
	st  store.Store
	key []byte
	// previous are the keys of the secrets rotated out: a cookie not found
	// under key is looked up under each, so that sessions started before a
	// rotation go on until they end or the secrets are retired.
	previous [][]byte
	cfg      Config
	now      func() time.Time
	cache    *Cache
	hashes   sync.Pool // keyed HMAC states, reset between uses
}

// New returns a Manager that hashes cookie values with a key derived from
// secret. cache may be nil (no caching) and now nil (the wall clock).
// Cookies of sessions started under the previous secrets (newest first)
// are accepted too; new sessions are always hashed under secret.
func New(st store.Store, secret []byte, cfg Config, cache *Cache, now func() time.Time, previous ...[]byte) *Manager {
	if now == nil {
		now = time.Now
	}
	m := &Manager{st: st, key: keys.Derive(secret, "session"), cfg: cfg.withDefaults(), now: now, cache: cache}
	for _, p := range previous {
		m.previous = append(m.previous, keys.Derive(p, "session"))
	}
	m.hashes.New = func() any { return hmac.New(sha256.New, m.key) }
	return m
}

// Config returns the effective configuration.
func (m *Manager) Config() Config { return m.cfg }

// Hash is the keyed hash under which a cookie value is stored.
func (m *Manager) Hash(token string) []byte {
	var buf [sha256.Size]byte
	return append([]byte(nil), m.hash(token, &buf)...)
}

// hash computes the keyed hash into buf without allocating.
func (m *Manager) hash(token string, buf *[sha256.Size]byte) []byte {
	mac := m.hashes.Get().(hash.Hash)
	mac.Reset()
	// Through a stack buffer: hmac has no WriteString, and converting the
	// token would allocate on every request.
	var tb [tokenLen]byte
	for len(token) > 0 {
		n := copy(tb[:], token)
		mac.Write(tb[:n])
		token = token[n:]
	}
	sum := mac.Sum(buf[:0])
	m.hashes.Put(mac)
	return sum
}

// Start creates a session for userID and returns the cookie value, which is
// never stored. kind and credentialID name what started it.
func (m *Manager) Start(ctx context.Context, userID int64, kind, credentialID, ip, userAgent string) (string, *store.Session, error) {
	token, s, err := m.Prepare(kind, credentialID, ip, userAgent)
	if err != nil {
		return "", nil, err
	}
	s.UserID = userID
	if err := m.st.CreateSession(ctx, s); err != nil {
		return "", nil, fmt.Errorf("starting session for user %d: %w", userID, err)
	}
	return token, s, nil
}

// Prepare makes a session without storing it, for a credential whose use
// and session must be written in one transaction; the caller sets UserID
// (or lets the store do it) and may shorten ExpiresAt.
func (m *Manager) Prepare(kind, credentialID, ip, userAgent string) (string, *store.Session, error) {
	var raw [32]byte
	var id [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("generating session token: %w", err)
	}
	if _, err := rand.Read(id[:]); err != nil {
		return "", nil, fmt.Errorf("generating session id: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	now := m.now()
	return token, &store.Session{
		ID:           hex.EncodeToString(id[:]),
		TokenHash:    m.Hash(token),
		CreatedAt:    now,
		LastSeenAt:   now,
		ExpiresAt:    now.Add(m.cfg.Lifetime),
		IP:           ip,
		UserAgent:    userAgent,
		Kind:         kind,
		CredentialID: credentialID,
		Site:         m.cfg.Site,
	}, nil
}

// Check returns the session a cookie value names. When the session cannot be
// used it returns a non-empty reason (one of the Reason constants) and, if the
// session was found, the session too, so the refusal can be audited with it.
// err is only for store failures. The returned session may be shared with
// other requests: do not modify it. Its TokenHash is not filled in.
func (m *Manager) Check(ctx context.Context, token string) (su *store.SessionUser, reason string, err error) {
	if token == "" {
		return nil, ReasonMissing, nil
	}
	if !wellFormed(token) {
		return nil, ReasonMalformed, nil
	}
	var buf [sha256.Size]byte
	h := m.hash(token, &buf)
	now := m.now()
	gen := m.cache.generation()
	if su = m.cache.get(h, now); su == nil {
		su, err = m.lookup(ctx, token, h)
		if errors.Is(err, store.ErrNotFound) {
			return nil, ReasonUnknown, nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("looking up session: %w", err)
		}
		// The token hash is never read again; the user agent the session
		// started with is (theft signals) and is shared by most sessions,
		// so one copy of each is kept. Cached under the current key's hash
		// whatever key found it, so that a session of a previous secret
		// is served from memory like any other.
		su.TokenHash = nil
		su.UserAgent = m.cache.intern(su.UserAgent)
		m.cache.put(h, su, now, gen)
	}
	switch {
	// First: another site learns nothing of the session, not even its state.
	case su.Site != m.cfg.Site:
		return nil, ReasonWrongSite, nil
	case !su.RevokedAt.IsZero():
		return su, ReasonRevoked, nil
	// The route's lifetime applies too, so that shortening it in the config
	// takes effect on sessions already started.
	case !now.Before(su.ExpiresAt), !now.Before(su.CreatedAt.Add(m.cfg.Lifetime)):
		return su, ReasonExpired, nil
	case !now.Before(su.LastSeenAt.Add(m.cfg.Idle)):
		return su, ReasonIdle, nil
	case !su.UserActive:
		return su, ReasonInactiveUser, nil
	}
	if now.Sub(su.LastSeenAt) >= m.cfg.TouchEvery {
		if err := m.st.TouchSession(ctx, su.ID, now); err != nil {
			return nil, "", fmt.Errorf("recording activity of session %s: %w", su.ID, err)
		}
		touched := *su
		touched.LastSeenAt = now
		su = &touched
		m.cache.put(h, su, now, gen)
	}
	return su, "", nil
}

// lookup finds the session of a cookie whose hash under the current key is
// h, then under each previous key: a cookie that is nobody's costs one
// store lookup per secret kept, at most 1+keys.MaxPreviousSecrets.
func (m *Manager) lookup(ctx context.Context, token string, h []byte) (*store.SessionUser, error) {
	su, err := m.st.SessionByTokenHash(ctx, h)
	for _, key := range m.previous {
		if !errors.Is(err, store.ErrNotFound) {
			break
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(token))
		su, err = m.st.SessionByTokenHash(ctx, mac.Sum(nil))
	}
	return su, err
}

// User is the store's user id, from the cache while it may answer (see
// Cache.User). The user returned may be shared: do not modify it.
func (m *Manager) User(ctx context.Context, id int64) (*store.User, error) {
	return m.cache.User(ctx, m.st, id, m.now())
}

// Link is the store's link jti, from the cache while it may answer (see
// Cache.Link). The link returned may be shared: do not modify it.
func (m *Manager) Link(ctx context.Context, jti string) (*store.Link, error) {
	return m.cache.Link(ctx, m.st, jti, m.now())
}

// ForgetUser drops the user's cached row and sessions, after a change of
// this process's own (a password set), so that it holds at once here.
func (m *Manager) ForgetUser(id int64) { m.cache.ForgetUser(id) }

// End revokes a session; ending one that is already over is not an error.
func (m *Manager) End(ctx context.Context, id string) error {
	err := m.st.RevokeSession(ctx, id, m.now())
	// After the write, so that a lookup racing with it cannot leave the
	// session cached as live.
	m.cache.ForgetSession(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ending session %s: %w", id, err)
	}
	return nil
}

func wellFormed(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
