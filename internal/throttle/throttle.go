// Package throttle limits failed attempts per key (a client IP, an email
// address), so that guessing a short code costs an attacker time.
package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// maxKeys bounds memory: past it, windows that are over are swept, and if
// none are, the oldest half of the table is dropped. An attacker with that
// many addresses is beyond what a per-IP limit can stop anyway.
const maxKeys = 100_000

// Limiter allows Limit failures per Window for each key. Only failures count:
// a person who types their code right is never slowed down. It is in memory,
// so each Caddy instance counts on its own.
type Limiter struct {
	limit  int
	window time.Duration

	mu   sync.Mutex
	keys map[string]*bucket
	// clean holds keys the store said had no failures, and when it said
	// so (see SharedFresh); bounded by maxClean.
	clean map[string]time.Time

	shared Shared // nil: this process counts alone
	name   string
}

type bucket struct {
	start    time.Time
	failures int
	// What the store last said of the key's failures on every gateway,
	// when it said some: see ReserveShared.
	shared shareMemo
}

type shareMemo struct {
	n   int
	end time.Time
}

// maxClean bounds the keys remembered as clean: a key that is not stays
// correct, it only costs a store read.
const maxClean = 4096

// SharedFresh is how long the store's word that a key has no failures on
// any gateway is taken as read, so that a client making good attempts (a
// link used again and again) does not cost a store read each. A key with
// failures is read on every attempt, but a count at the limit is kept until
// its window ends. So the most another gateway's failures can buy is the
// attempts this one lets through for a key it read as clean less than
// SharedFresh ago, until the first of them fails: this gateway then learns
// the whole count from AddFailure.
const SharedFresh = 250 * time.Millisecond

// New returns a limiter; a limit of 0 or less disables it.
func New(limit int, window time.Duration) *Limiter {
	return &Limiter{limit: limit, window: window, keys: make(map[string]*bucket), clean: make(map[string]time.Time)}
}

// Allow reports whether key may make another attempt at now, and if not,
// how long until it may.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil || l.limit <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[key]
	if b == nil || !now.Before(b.start.Add(l.window)) {
		return true, 0
	}
	if b.failures < l.limit {
		return true, 0
	}
	return false, b.start.Add(l.window).Sub(now)
}

// Fail counts a failed attempt by key at now.
func (l *Limiter) Fail(key string, now time.Time) {
	if l == nil || l.limit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[key]
	if b == nil || !now.Before(b.start.Add(l.window)) {
		if b == nil && len(l.keys) >= maxKeys {
			l.sweep(now)
		}
		l.keys[key] = &bucket{start: now, failures: 1}
		return
	}
	b.failures++
}

func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.keys {
		if !now.Before(b.start.Add(l.window)) {
			delete(l.keys, k)
		}
	}
	if len(l.keys) < maxKeys {
		return
	}
	n := 0
	for k := range l.keys {
		delete(l.keys, k)
		if n++; n >= maxKeys/2 {
			break
		}
	}
}

// Reservation is one attempt counted before the credential is checked.
type Reservation struct {
	l     *Limiter
	key   string
	start time.Time // the window the attempt was counted in
}

// Reserve counts an attempt by key at now before it is checked, so that a
// burst of concurrent guesses cannot all be evaluated while the first are
// still being checked: the limit holds for attempts in flight too. It
// refuses (false, and how long to wait) once the window holds Limit
// attempts. A reservation that is not released stays counted as a failure.
func (l *Limiter) Reserve(key string, now time.Time) (Reservation, bool, time.Duration) {
	if l == nil || l.limit <= 0 {
		return Reservation{}, true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.keys[key]
	if b == nil || !now.Before(b.start.Add(l.window)) {
		if b == nil && len(l.keys) >= maxKeys {
			l.sweep(now)
		}
		b = &bucket{start: now}
		l.keys[key] = b
	}
	if b.failures >= l.limit {
		return Reservation{}, false, b.start.Add(l.window).Sub(now)
	}
	b.failures++
	return Reservation{l: l, key: key, start: b.start}, true, 0
}

// Release gives a reserved attempt back (call it once): the credential was right. It does
// nothing once the window the attempt was counted in is over.
func (r Reservation) Release() {
	if r.l == nil {
		return
	}
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if b := r.l.keys[r.key]; b != nil && b.start.Equal(r.start) && b.failures > 0 {
		b.failures--
		// A key whose attempts all succeeded holds nothing worth its
		// memory: a used ticket's id, say, is never tried again.
		if b.failures == 0 && b.shared.n == 0 {
			delete(r.l.keys, r.key)
		}
	}
}

// Shared counts failures for every gateway on a store; store.Store is one.
type Shared interface {
	Failures(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
	AddFailure(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error)
}

// Share makes the limiter count failures in s as well, under name (the
// limiter's purpose, e.g. "ticket.ip"), so that every gateway on the store
// sees every gateway's failures: N gateways do not give a guesser N times
// the guesses. Attempts in flight stay counted in memory, per process.
func (l *Limiter) Share(s Shared, name string) *Limiter {
	if l != nil {
		l.shared, l.name = s, name
	}
	return l
}

// sharedKey keeps client text out of the store's keys: a fixed-length
// digest of the limiter's name and the key.
func (l *Limiter) sharedKey(key string) string {
	sum := sha256.Sum256([]byte(l.name + "\x00" + key))
	return l.name + ":" + hex.EncodeToString(sum[:16])
}

// ReserveShared is Reserve, and then also refuses when the failures every
// gateway counted in the store have reached the limit. A store that cannot
// answer does not stop the attempt: checking the credential needs the
// store too, and fails closed there.
func (l *Limiter) ReserveShared(ctx context.Context, key string, now time.Time) (Reservation, bool, time.Duration) {
	r, ok, wait := l.Reserve(key, now)
	if !ok || l == nil || l.shared == nil || l.limit <= 0 {
		return r, ok, wait
	}
	n, end, known := l.memo(key, now)
	if !known {
		var err error
		n, end, err = l.shared.Failures(ctx, l.sharedKey(key), l.window, now)
		if err != nil {
			return r, true, 0
		}
		l.remember(key, n, end, now)
	}
	if n >= l.limit && now.Before(end) {
		r.Release()
		return Reservation{}, false, end.Sub(now)
	}
	return r, true, 0
}

// memo is the store's count for key if it may be used at now: none, read
// within SharedFresh, or at the limit with its window still running.
func (l *Limiter) memo(key string, now time.Time) (int, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.keys[key]; b != nil && b.shared.n >= l.limit && now.Before(b.shared.end) {
		return b.shared.n, b.shared.end, true
	}
	if at, ok := l.clean[key]; ok {
		if d := now.Sub(at); d >= 0 && d < SharedFresh {
			return 0, time.Time{}, true
		}
		delete(l.clean, key)
	}
	return 0, time.Time{}, false
}

func (l *Limiter) remember(key string, n int, end, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == 0 {
		if _, ok := l.clean[key]; !ok && len(l.clean) >= maxClean {
			for k := range l.clean { // map order is random
				delete(l.clean, k)
				break
			}
		}
		l.clean[key] = now
		return
	}
	delete(l.clean, key)
	if b := l.keys[key]; b != nil {
		b.shared = shareMemo{n: n, end: end}
	}
}

// Fail records the reserved attempt as a failure for every gateway on the
// store (it is already counted in memory). It is the counterpart of
// Release; call one of them, once.
func (r Reservation) Fail(ctx context.Context, now time.Time) {
	if r.l == nil || r.l.shared == nil {
		return
	}
	if n, end, err := r.l.shared.AddFailure(ctx, r.l.sharedKey(r.key), r.l.window, now); err == nil {
		r.l.remember(r.key, n, end, now)
	}
}
