package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// record makes h note each derivation it runs, and returns a function that
// hands over those noted since its last call.
func record(h *Hasher) func() []kdf {
	var mu sync.Mutex
	var got []kdf
	h.observe = func(k kdf) {
		mu.Lock()
		got = append(got, k)
		mu.Unlock()
	}
	return func() []kdf {
		mu.Lock()
		defer mu.Unlock()
		r := got
		got = nil
		return r
	}
}

func equalKDFs(a, b []kdf) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestVerifyWork proves the timing rule by counting rather than timing: an
// unknown account (VerifyUnknown), a wrong password, a right one and a
// stored hash that cannot be read all run exactly one derivation, the same
// one, with the current parameters. What differs is documented, and checked
// here too: a hash with another cost runs that cost.
func TestVerifyWork(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams, 0)
	took := record(h)
	current := []kdf{{alg: algArgon2id, rounds: 1, memKiB: 64, threads: 1, saltLen: 16, keyLen: 32}}

	const right = "I love Paris"
	stored, err := h.Hash(ctx, right)
	if err != nil {
		t.Fatal(err)
	}
	if got := took(); !equalKDFs(got, current) {
		t.Fatalf("Hash ran %+v, want %+v", got, current)
	}
	older, err := Hash(right, Params{MemoryKiB: 32, Time: 2, Threads: 2, KeyLen: 16, SaltLen: 8})
	if err != nil {
		t.Fatal(err)
	}
	legacy := djangoPBKDF2(right, "seasalt", 1000)

	type attempt struct {
		name string
		run  func() (bool, error)
		want []kdf
		ok   bool
		err  error // nil, or what errors.Is must find
	}
	verify := func(password, hash string) func() (bool, error) {
		return func() (bool, error) {
			ok, _, err := h.Verify(ctx, password, hash)
			return ok, err
		}
	}
	unknown := func(password string) func() (bool, error) {
		return func() (bool, error) { return false, h.VerifyUnknown(ctx, password) }
	}
	for _, a := range []attempt{
		// The rule: these cannot be told apart by their work.
		{"unknown account", unknown(right), current, false, nil},
		{"unknown account, other password", unknown("x"), current, false, nil},
		{"unknown account, long password", unknown(strings.Repeat("x", MaxPasswordBytes)), current, false, nil},
		{"wrong password", verify("I love Rome", stored), current, false, nil},
		{"wrong password, short", verify("x", stored), current, false, nil},
		{"right password", verify(right, stored), current, true, nil},
		{"empty stored hash", verify(right, ""), current, false, ErrUnknownScheme},
		{"corrupt stored hash", verify(right, "$argon2id$junk"), current, false, ErrMalformedHash},
		{"unknown scheme", verify(right, "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3"), current, false, ErrUnknownScheme},
		{"absurd legacy cost", verify(right, "pbkdf2_sha256$99999999$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="), current, false, ErrMalformedHash},

		// Refused before any work, whatever the account.
		{"empty password", verify("", stored), nil, false, ErrEmptyPassword},
		{"empty password, unknown account", unknown(""), nil, false, ErrEmptyPassword},
		{"too long", verify(strings.Repeat("x", MaxPasswordBytes+1), stored), nil, false, ErrPasswordTooLong},
		{"too long, unknown account", unknown(strings.Repeat("x", MaxPasswordBytes+1)), nil, false, ErrPasswordTooLong},

		// The documented difference: a hash of another cost runs that cost,
		// right or wrong, until its owner's next login replaces it.
		{"older argon2id, wrong", verify("I love Rome", older), []kdf{{alg: algArgon2id, rounds: 2, memKiB: 32, threads: 2, saltLen: 8, keyLen: 16}}, false, nil},
		{"older argon2id, right", verify(right, older), []kdf{{alg: algArgon2id, rounds: 2, memKiB: 32, threads: 2, saltLen: 8, keyLen: 16}}, true, nil},
		{"legacy, wrong", verify("I love Rome", legacy), []kdf{{alg: algPBKDF2SHA256, rounds: 1000, saltLen: 7, keyLen: 32}}, false, nil},
		{"legacy, right", verify(right, legacy), []kdf{{alg: algPBKDF2SHA256, rounds: 1000, saltLen: 7, keyLen: 32}}, true, nil},
	} {
		ok, err := a.run()
		if got := took(); !equalKDFs(got, a.want) {
			t.Errorf("%s: ran %+v, want %+v", a.name, got, a.want)
		}
		if ok != a.ok || (a.err == nil) != (err == nil) || a.err != nil && !errors.Is(err, a.err) {
			t.Errorf("%s: ok=%v err=%v, want ok=%v err=%v", a.name, ok, err, a.ok, a.err)
		}
	}

	// The dummy is a hash under the current parameters, of no known
	// password, and each Hasher has its own.
	d, err := parse(h.dummy)
	if err != nil || d.kdf != h.current || d.kdf != current[0] {
		t.Fatalf("dummy %+v, %v", d, err)
	}
	if other := newHasher(t, testParams, 0); other.dummy == h.dummy {
		t.Fatal("two Hashers share a dummy")
	}
}

// TestHasherBoundsConcurrency: at most maxConcurrent derivations run at
// once, and that many do. The first maxConcurrent to start wait for each
// other, so the peak is reached whatever the scheduling.
func TestHasherBoundsConcurrency(t *testing.T) {
	const n = 3
	ctx := context.Background()
	h := newHasher(t, testParams, n)
	stored, err := Hash("I love Paris", testParams)
	if err != nil {
		t.Fatal(err)
	}
	var inside, peak, total atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	h.observe = func(kdf) {
		total.Add(1)
		k := inside.Add(1)
		for p := peak.Load(); k > p && !peak.CompareAndSwap(p, k); p = peak.Load() {
		}
		if k == n {
			once.Do(func() { close(full) })
		}
		<-full
		inside.Add(-1)
	}
	var wg sync.WaitGroup
	for i := range 4 * n {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				h.VerifyUnknown(ctx, "I love Rome")
			case 1:
				h.Verify(ctx, "I love Paris", stored)
			default:
				h.Hash(ctx, "I love Paris")
			}
		})
	}
	wg.Wait()
	if p, tot := peak.Load(), total.Load(); p != n || tot != 4*n {
		t.Fatalf("%d derivations, at most %d at once; want %d, at most %d", tot, p, 4*n, n)
	}
	if got := cap(newHasher(t, testParams, 0).slots); got < 1 {
		t.Fatalf("default bound %d", got)
	}
}

// TestHasherHonoursContext: a caller whose context ends while it waits for
// a turn gives up with ctx's error, and runs nothing.
func TestHasherHonoursContext(t *testing.T) {
	h := newHasher(t, testParams, 1)
	stored, err := Hash("I love Paris", testParams)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	var runs atomic.Int32
	h.observe = func(kdf) {
		runs.Add(1)
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}
	holder := make(chan error)
	go func() { holder <- h.VerifyUnknown(context.Background(), "I love Rome") }()
	<-entered // the only turn is taken

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	waiting, stop := context.WithCancel(context.Background())
	results := make(chan error, 4)
	go func() { results <- h.VerifyUnknown(waiting, "x") }()
	go func() {
		_, _, err := h.Verify(waiting, "I love Paris", stored)
		results <- err
	}()
	stop()
	for _, err := range []error{
		<-results,
		<-results,
		h.VerifyUnknown(cancelled, "x"),
		func() error { _, err := h.Hash(cancelled, "x"); return err }(),
		func() error { _, _, err := h.Verify(cancelled, "I love Paris", stored); return err }(),
	} {
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "password hashing: ") {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	}
	close(release)
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	if got := runs.Load(); got != 1 {
		t.Fatalf("%d derivations ran, want only the holder's", got)
	}
	// A context already done gets no turn even when one is free.
	if err := h.VerifyUnknown(cancelled, "x"); !errors.Is(err, context.Canceled) || runs.Load() != 1 {
		t.Fatalf("with a free turn and a done context: %v, %d runs", err, runs.Load())
	}
	// And the turn came back.
	if ok, _, err := h.Verify(context.Background(), "I love Paris", stored); !ok || err != nil {
		t.Fatalf("after: ok=%v err=%v", ok, err)
	}
}
