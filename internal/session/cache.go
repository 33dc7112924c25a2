package session

import (
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// DefaultCacheTTL is how long a looked-up session is trusted without asking
// the store again. It bounds how late a revocation made by another process
// (the CLI, another Caddy on the same database) takes effect; revocations
// through this process's Manager or Cache take effect at once.
const DefaultCacheTTL = time.Second

// defaultCacheSize bounds the cache's memory: about 300 bytes an entry.
const defaultCacheSize = 100_000

// Cache keeps recently checked sessions in memory so that the request hot
// path does not query the store on every request. One Cache is shared by
// every Manager on the same store, so that ending a session on one route
// ends it on all of them.
type Cache struct {
	ttl  time.Duration
	size int

	mu      sync.RWMutex
	entries map[string]*cached // by keyed hash of the cookie value
}

type cached struct {
	su      store.SessionUser
	fetched time.Time
}

// NewCache returns a cache holding entries for ttl (DefaultCacheTTL if 0; a
// negative ttl disables caching).
func NewCache(ttl time.Duration) *Cache {
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	return &Cache{ttl: ttl, size: defaultCacheSize, entries: make(map[string]*cached)}
}

// get returns a fresh entry; the key conversion does not allocate.
func (c *Cache) get(hash []byte, now time.Time) *store.SessionUser {
	if c == nil || c.ttl < 0 {
		return nil
	}
	c.mu.RLock()
	e := c.entries[string(hash)]
	c.mu.RUnlock()
	if e == nil || now.Sub(e.fetched) >= c.ttl || now.Before(e.fetched) {
		return nil
	}
	return &e.su
}

func (c *Cache) put(hash []byte, su *store.SessionUser, now time.Time) {
	if c == nil || c.ttl < 0 {
		return
	}
	e := &cached{su: *su, fetched: now}
	c.mu.Lock()
	if len(c.entries) >= c.size {
		// Dropping everything is crude but bounded, and only costs one
		// store lookup per active session.
		clear(c.entries)
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
