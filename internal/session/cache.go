package session

import (
	"context"
	"strings"
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
// not query the store on every request, and with them the user and link
// rows a signed link is decided on (User, Link). One Cache is shared by
// every Manager on the same store, so that ending a session on one route
// ends it on all of them; Follow keeps it right when others end sessions,
// deactivate users or revoke links.
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
	users   map[int64]*cachedRow[store.User]
	links   map[string]*cachedRow[store.Link]
	// agents holds one copy of each session's starting user agent: a
	// few browsers' strings shared by thousands of sessions.
	agents map[string]string
	// gen counts forgets. A row read from the store before a forget may be
	// the very row the forget was for: it is kept only if gen has not
	// moved since the read began, or a revocation that lands between the
	// read and the put would be undone for FollowedTTL.
	gen atomic.Uint64 // changed under mu
}

type cachedRow[T any] struct {
	row     T
	fetched time.Time
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
	c := &Cache{size: size, entries: make(map[string]*cached),
		users: make(map[int64]*cachedRow[store.User]), links: make(map[string]*cachedRow[store.Link]),
		agents: make(map[string]string)}
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
	ttl, ok := c.answers(now)
	if !ok {
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

// answers reports whether the cache may answer from memory at now, and for
// how long an entry lives.
func (c *Cache) answers(now time.Time) (time.Duration, bool) {
	if c == nil {
		return 0, false
	}
	ttl := time.Duration(c.ttl.Load())
	if ttl < 0 || c.following.Load() && now.Sub(time.Unix(0, c.lastSync.Load())) > time.Duration(c.staleAfter.Load()) {
		return 0, false
	}
	return ttl, true
}

// generation is taken before a store read whose result is then put.
func (c *Cache) generation() uint64 {
	if c == nil {
		return 0
	}
	return c.gen.Load()
}

func (c *Cache) put(hash []byte, su *store.SessionUser, now time.Time, gen uint64) {
	if c == nil || c.ttl.Load() < 0 {
		return
	}
	e := &cached{su: *su, fetched: now}
	c.mu.Lock()
	if c.gen.Load() == gen {
		makeRoom(c.entries, c.size)
		c.entries[string(hash)] = e
	}
	c.mu.Unlock()
}

// intern returns the one copy of ua the cache keeps (ua itself when the
// cache is off or its table of agents is full).
func (c *Cache) intern(ua string) string {
	if c == nil || ua == "" {
		return ua
	}
	c.mu.RLock()
	v, ok := c.agents[ua]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.agents[ua]; ok {
		return v
	}
	if len(c.agents) >= maxAgents {
		return ua
	}
	ua = strings.Clone(ua)
	c.agents[ua] = ua
	return ua
}

// maxAgents bounds the distinct user agents interned; a client sending a
// new one per session only costs its own copies.
const maxAgents = 4096

// makeRoom drops a random eighth of m when it holds size entries or more:
// map order is random, and each one dropped costs one store lookup to
// bring back.
func makeRoom[K comparable, V any](m map[K]V, size int) {
	if len(m) < size {
		return
	}
	n := 0
	for k := range m {
		delete(m, k)
		if n++; n >= size/8+1 {
			break
		}
	}
}

// rowReader reads the rows User and Link cache.
type rowReader interface {
	User(ctx context.Context, id int64) (*store.User, error)
	Link(ctx context.Context, jti string) (*store.Link, error)
}

// User is st.User, answered from memory while the cache may (it follows
// the store's changes, which name every deactivation, deletion and
// revocation of a user's links). The user returned may be shared: do not
// modify it.
func (c *Cache) User(ctx context.Context, st rowReader, id int64, now time.Time) (*store.User, error) {
	if c == nil {
		return st.User(ctx, id)
	}
	return readThrough(c, c.users, id, now, func() (*store.User, error) { return st.User(ctx, id) })
}

// Link is st.Link, answered from memory like User (the changes name every
// revocation and deletion of a link). A link with no row is not
// remembered: its first use creates one. The link returned may be shared:
// do not modify it.
func (c *Cache) Link(ctx context.Context, st rowReader, jti string, now time.Time) (*store.Link, error) {
	if c == nil {
		return st.Link(ctx, jti)
	}
	return readThrough(c, c.links, jti, now, func() (*store.Link, error) { return st.Link(ctx, jti) })
}

func readThrough[K comparable, T any](c *Cache, m map[K]*cachedRow[T], key K, now time.Time, read func() (*T, error)) (*T, error) {
	ttl, ok := c.answers(now)
	if !ok {
		return read()
	}
	gen := c.gen.Load()
	c.mu.RLock()
	e := m[key]
	c.mu.RUnlock()
	if e != nil && now.Sub(e.fetched) < ttl && !now.Before(e.fetched) {
		return &e.row, nil
	}
	row, err := read()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen.Load() == gen {
		// Users and links share the sessions' bound, a quarter each.
		makeRoom(m, max(c.size/4, 1))
		m[key] = &cachedRow[T]{row: *row, fetched: now}
	}
	c.mu.Unlock()
	return row, nil
}

// ForgetSession drops a session, so that a revocation is seen at once.
func (c *Cache) ForgetSession(id string) {
	c.forget(func(su *store.SessionUser) bool { return su.ID == id })
}

// ForgetUser drops a user and every session of theirs, so that
// deactivating the user or revoking their links is seen at once.
func (c *Cache) ForgetUser(userID int64) {
	c.forgetMany(nil, map[int64]bool{userID: true}, nil)
}

// ForgetLink drops a link's row, so that its revocation is seen at once.
func (c *Cache) ForgetLink(jti string) {
	c.forgetMany(nil, nil, map[string]bool{jti: true})
}

func (c *Cache) forget(match func(*store.SessionUser) bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen.Add(1)
	for k, e := range c.entries {
		if match(&e.su) {
			delete(c.entries, k)
		}
	}
	c.mu.Unlock()
}

// forgetMany drops the sessions, users (with their sessions) and links
// named by a batch of changes in one pass over the cache.
func (c *Cache) forgetMany(sessions map[string]bool, users map[int64]bool, links map[string]bool) {
	if c == nil || len(sessions) == 0 && len(users) == 0 && len(links) == 0 {
		return
	}
	c.mu.Lock()
	c.gen.Add(1)
	if len(sessions) > 0 || len(users) > 0 {
		for k, e := range c.entries {
			if sessions[e.su.ID] || users[e.su.UserID] {
				delete(c.entries, k)
			}
		}
	}
	for id := range users {
		delete(c.users, id)
	}
	for jti := range links {
		delete(c.links, jti)
	}
	c.mu.Unlock()
}
