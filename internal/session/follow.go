package session

import (
	"context"
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// FollowConfig tunes Follow. Zero values take the defaults.
type FollowConfig struct {
	// Poll is how often the store's changes are read when it cannot say
	// itself that there are new ones. Default 250ms.
	Poll time.Duration
	// StaleAfter is how long the cache answers from memory after it last
	// read the changes; past it (the store is unreachable), every request
	// asks the store. Default four polls, at least one second.
	StaleAfter time.Duration
	// OnError is told of a failed read (rate-limited by the caller's
	// logger); nil ignores them.
	OnError func(error)
	Now     func() time.Time
}

// Follow keeps the cache right while sessions are revoked and users
// deactivated by other processes (the CLI, other gateways on the store): it
// reads the store's fan-out of changes (store.Changes) and drops what they
// name. While it follows, entries live FollowedTTL instead of a second. It
// returns when ctx ends; the cache then goes back to its short TTL.
func (c *Cache) Follow(ctx context.Context, src store.Changes, cfg FollowConfig) {
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = max(4*cfg.Poll, time.Second)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnError == nil {
		cfg.OnError = func(error) {}
	}
	c.staleAfter.Store(int64(cfg.StaleAfter))
	oldTTL := c.ttl.Load()

	// Start from now: what was revoked before is not in the cache, which
	// is emptied so that nothing cached before following started is kept.
	var seq int64
	for {
		latest, err := src.LatestChange(ctx)
		if err == nil {
			seq = latest
			break
		}
		cfg.OnError(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.Poll):
		}
	}
	c.mu.Lock()
	c.gen.Add(1)
	clear(c.entries)
	clear(c.users)
	clear(c.links)
	c.mu.Unlock()
	c.lastSync.Store(cfg.Now().UnixNano())
	c.following.Store(true)
	c.ttl.Store(int64(FollowedTTL))
	defer func() {
		c.ttl.Store(oldTTL)
		c.following.Store(false)
	}()

	// A store that can say when there are changes (LISTEN/NOTIFY) wakes the
	// loop at once; the poll remains, for what a notification misses.
	wake := make(chan struct{}, 1)
	if w, ok := src.(store.ChangeWaiter); ok {
		go func() {
			for ctx.Err() == nil {
				if err := w.WaitChange(ctx); err != nil {
					if ctx.Err() != nil {
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-time.After(cfg.Poll):
					}
					continue
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	t := time.NewTicker(cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		next, err := c.apply(ctx, src, seq)
		if err != nil {
			cfg.OnError(err)
			continue
		}
		seq = next
		c.lastSync.Store(cfg.Now().UnixNano())
	}
}

// apply reads every change after seq and drops what they name.
func (c *Cache) apply(ctx context.Context, src store.Changes, seq int64) (int64, error) {
	for {
		changes, err := src.ChangesSince(ctx, seq, 1000)
		if err != nil {
			return seq, err
		}
		sessions, users, links := map[string]bool{}, map[int64]bool{}, map[string]bool{}
		for _, ch := range changes {
			switch ch.Kind {
			case store.ChangeSession:
				sessions[ch.Subject] = true
			case store.ChangeLink:
				links[ch.Subject] = true
			case store.ChangeUser:
				if id, err := strconv.ParseInt(ch.Subject, 10, 64); err == nil {
					users[id] = true
				}
			}
			seq = ch.Seq
		}
		c.forgetMany(sessions, users, links)
		if len(changes) < 1000 {
			return seq, nil
		}
	}
}
