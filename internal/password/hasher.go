package password

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
)

// Hasher hashes and verifies passwords under the current Params, running
// at most a fixed number of derivations at once. It is safe for concurrent
// use.
//
// The bound is there because each argon2id derivation holds MemoryKiB of
// memory and a core for tens of milliseconds, and anyone can ask for one:
// past the bound, callers wait for a turn (or for their context to end)
// rather than exhaust the machine. A derivation is one turn whatever its
// lanes: a legacy Django argon2 hash with p=8 runs eight goroutines in its
// turn, until its owner's next login replaces it.
type Hasher struct {
	params  Params
	current kdf
	slots   chan struct{}
	// dummy is an argon2id hash under params of no password anyone knows
	// (its salt and hash are random), verified in place of an unknown
	// account's.
	dummy string

	// observe, when set (by tests), is told of each derivation as it starts
	// in its turn: the timing rule is tested by counting them.
	observe func(kdf)
}

// NewHasher returns a Hasher whose new hashes, and whose unknown accounts,
// cost p; it runs at most maxConcurrent derivations at once, or
// runtime.GOMAXPROCS(0) if maxConcurrent is not positive. Memory use peaks
// near maxConcurrent × p.MemoryKiB.
func NewHasher(p Params, maxConcurrent int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, current: p.kdf(), slots: make(chan struct{}, maxConcurrent)}
	d := &stored{scheme: SchemeArgon2id, kdf: h.current, salt: make([]byte, p.SaltLen), sum: make([]byte, p.KeyLen)}
	rand.Read(d.salt) // never fails (crypto/rand, Go 1.24+)
	rand.Read(d.sum)
	h.dummy = d.encode()
	return h, nil
}

// defaultHasher serves the package's Verify.
var defaultHasher = sync.OnceValue(func() *Hasher {
	h, err := NewHasher(DefaultParams, 0)
	if err != nil {
		panic(err) // DefaultParams are valid
	}
	return h
})

// Params returns the parameters of new hashes.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the argon2id PHC string of password under h's Params, with a
// random salt, once a turn is free.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	h.note(h.current)
	return newArgon2id(password, h.params), nil
}

// Verify says whether password matches a stored hash of any scheme
// (comparing in constant time), and whether the caller should now store
// h.Hash(password) in its place: needsUpgrade is only ever true together
// with ok, and is true for every legacy scheme and for argon2id made under
// other parameters than h's.
//
// An empty password and one over MaxPasswordBytes are refused
// (ErrEmptyPassword, ErrPasswordTooLong) before any work, whatever the
// account. A stored hash that cannot be read is reported (ErrUnknownScheme,
// ErrMalformedHash) only after the work of a wrong password, so that a
// corrupt row does not stand out by its time either. ok is false whenever
// err is not nil; err also reports ctx ending while waiting for a turn.
//
// The time Verify takes is the cost of the stored hash: for a legacy hash or
// an older argon2id, its own (see the package comment). For an account that
// does not exist, call VerifyUnknown.
func (h *Hasher) Verify(ctx context.Context, password, hash string) (ok, needsUpgrade bool, err error) {
	if err := checkPassword(password); err != nil {
		return false, false, err
	}
	s, perr := parse(hash)
	if perr != nil {
		s = h.dummyStored()
	}
	match, err := h.run(ctx, s, password)
	switch {
	case err != nil:
		return false, false, err
	case perr != nil:
		return false, false, perr
	case !match:
		return false, false, nil
	}
	return true, s.scheme != SchemeArgon2id || s.kdf != h.current, nil
}

// VerifyUnknown does the work of Verify for an account that does not exist,
// or has no password: the same derivation, with the same parameters, as
// verifying a wrong password against a hash under h's Params, which is what
// an account on the current scheme costs. It never succeeds; its error is
// Verify's for the password itself or for ctx.
func (h *Hasher) VerifyUnknown(ctx context.Context, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	_, err := h.run(ctx, h.dummyStored(), password)
	return err
}

// dummyStored parses the dummy, as Verify parses a real hash, so that even
// the parsing is the same work.
func (h *Hasher) dummyStored() *stored {
	s, err := parse(h.dummy)
	if err != nil {
		panic("password: the dummy hash does not parse: " + err.Error()) // NewHasher wrote it
	}
	return s
}

func (h *Hasher) run(ctx context.Context, s *stored, password string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	h.note(s.kdf)
	return s.match(password)
}

func (h *Hasher) acquire(ctx context.Context) error {
	// A context already done gets no turn even if one is free.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("password hashing: %w", err)
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password hashing: gave up waiting for a turn: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }

func (h *Hasher) note(k kdf) {
	if h.observe != nil {
		h.observe(k)
	}
}
