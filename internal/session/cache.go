package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// DefaultCacheTTL is how long a looked-up session is trusted without asking
// the store again when nothing follows the store's changes (see Follow): it
// bounds how late a revocation made by another process takes effect.
// Revocations through this process's Manager or Cache take effect at once.
const DefaultCacheTTL = time.Second

// FollowedTTL is how long an entry lives while the cache follows the
// store's changes. Revocations and deactivations reach it through the
// fan-out within a poll; the TTL only bounds the damage of a change missed
// (pruned before it was read, after a long stall).
const FollowedTTL = 10 * time.Minute

// DefaultCacheSize bounds the cache's memory: an entry is about 400 bytes
// with its key, so 250,000 active sessions take about 100 MB. Past it, an
// eighth of the entries, chosen at random, make room.
const DefaultCacheSize = 250_000

// Cache keeps checked sessions in memory so that the request hot path does
// not query the store on every request. One Cache is shared by every
// Manager on the same store, so that ending a session on one route ends it
// on all of them; Follow keeps it right when others end sessions.
type Cache struct {
	ttl  atomic.Int64 // time.Duration
	size int

	// While following, lastSync is when the fan-out was last read; an
	// entry is trusted only while that is recent (staleAfter), so a cache
	// that has lost sight of the store's changes stops answering from
	// memory rather than answer wrongly.
	following  atomic.Bool
	lastSync   atomic.Int64 // unix nanoseconds
	staleAfter atomic.Int64 // time.Duration

	mu      sync.RWMutex
	entries map[string]*cached // by keyed hash of the cookie value
}

type cached struct {
	su      store.SessionUser
	fetched time.Time
}

// NewCache returns a cache holding entries for ttl (DefaultCacheTTL if 0; a
// negative ttl disables caching), with room for DefaultCacheSize sessions.
func NewCache(ttl time.Duration) *Cache {
	return NewSizedCache(ttl, 0)
}

// NewSizedCache is NewCache with room for size sessions (DefaultCacheSize
// if 0).
func NewSizedCache(ttl time.Duration, size int) *Cache {
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if size <= 0 {
		size = DefaultCacheSize
	}
	c := &Cache{size: size, entries: make(map[string]*cached)}
	c.ttl.Store(int64(ttl))
	return c
}

// Len is the number of sessions held.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// get returns a fresh entry; the key conversion does not allocate.
func (c *Cache) get(hash []byte, now time.Time) *store.SessionUser {
	if c == nil {
		return nil
	}
	ttl := time.Duration(c.ttl.Load())
	if ttl < 0 || c.following.Load() && now.Sub(time.Unix(0, c.lastSync.Load())) > time.Duration(c.staleAfter.Load()) {
		return nil
	}
	c.mu.RLock()
	e := c.entries[string(hash)]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.fetched) >= ttl || now.Before(e.fetched) {
		return nil
	}
	return &e.su
}

func (c *Cache) put(hash []byte, su *store.SessionUser, now time.Time) {
	if c == nil || c.ttl.Load() < 0 {
		return
	}
	e := &cached{su: *su, fetched: now}
	c.mu.Lock()
	if len(c.entries) >= c.size {
		// Map order is random: dropping the first eighth drops a random
		// eighth, each of which costs one store lookup to bring back.
		n := 0
		for k := range c.entries {
			delete(c.entries, k)
			if n++; n >= c.size/8+1 {
				break
			}
		}
	}
	c.entries[string(hash)] = e
	c.mu.Unlock()
}

// ForgetSession drops a session, so that a revocation is seen at once.
func (c *Cache) ForgetSession(id string) {
	c.forget(func(su *store.SessionUser) bool { return su.ID == id })
}

// ForgetUser drops every session of a user, so that deactivating the user is
// seen at once.
func (c *Cache) ForgetUser(userID int64) {
	c.forget(func(su *store.SessionUser) bool { return su.UserID == userID })
}

func (c *Cache) forget(match func(*store.SessionUser) bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	for k, e := range c.entries {
		if match(&e.su) {
			delete(c.entries, k)
		}
	}
	c.mu.Unlock()
}

// forgetMany drops the sessions and users named by a batch of changes in
// one pass over the cache.
func (c *Cache) forgetMany(sessions map[string]bool, users map[int64]bool) {
	if len(sessions) == 0 && len(users) == 0 {
		return
	}
	c.forget(func(su *store.SessionUser) bool { return sessions[su.ID] || users[su.UserID] })
}
