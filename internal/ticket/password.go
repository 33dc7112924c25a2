// Package ticket holds one-shot tickets' passwords and credentials: how
// passwords are generated, hashed and checked, and how a request carries a
// ticket (and loses it before it goes upstream). The store, the claim and
// stamp, and the HTTP flow live elsewhere.
//
// # Two kinds of password, told apart by their shape
//
// A generated password is 128 random bits in unpadded base64url: exactly 22
// characters of A–Z a–z 0–9 - _ that decode to 16 bytes (LooksGenerated). It
// cannot be guessed, so a keyed hash (HMAC-SHA256 under a key derived from
// the gateway secret, kind "keyed") is enough and costs a microsecond.
//
// A password a person chose ("I love Paris") can be guessed from a copy of
// the database, so it is hashed with argon2id (kind "argon2id") and kept as
// a PHC string, $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, which carries
// its own parameters: changing them later leaves old hashes verifiable.
//
// The shape alone decides the kind. HashGenerated accepts only passwords
// that look generated; HashChosen refuses them ("those are reserved for
// generated passwords"), so a ticket's kind can always be told from the
// submitted password without looking the ticket up.
//
// # The timing rule
//
// The work Check does depends only on the shape of the submitted password,
// never on whether the ticket exists or which kind it has. A generated-
// looking password always costs one HMAC and a constant-time comparison
// (with a fixed dummy when there is no keyed hash to compare with); any
// other password always costs one argon2id (with a fixed dummy hash under
// the current parameters when there is no argon2id hash). So an unknown
// uuid answers as slowly as a wrong password, and the time taken says
// nothing about which tickets exist. The one thing a stored hash does
// decide is the argon2id parameters it was made with.
//
// Passwords are compared byte for byte: no Unicode normalisation.
package ticket

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// Password kinds, as kept in store.Ticket.PasswordKind.
const (
	KindKeyed    = "keyed"
	KindArgon2id = "argon2id"
)

// Password limits.
const (
	// GeneratedLen is the length of a generated password: 128 bits in
	// unpadded base64url.
	GeneratedLen = 22
	// MaxPasswordBytes bounds every password, chosen or submitted.
	MaxPasswordBytes = 1024
)

// ErrGeneratedShape is HashChosen's refusal of a password that looks
// generated.
var ErrGeneratedShape = errors.New("choose a password that is not 22 base64url characters; those are reserved for generated passwords")

// GeneratePassword returns 128 random bits from crypto/rand in unpadded
// base64url: 22 characters for which LooksGenerated is true.
func GeneratePassword() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating ticket password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// b64url maps each byte to its base64url value, or 0xff outside the
// alphabet.
var b64url = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// LooksGenerated says whether p has the shape of a generated password:
// exactly 22 base64url characters that decode strictly to 16 bytes (the
// last character's 4 unused bits are zero, so each 16 bytes have exactly one
// spelling).
func LooksGenerated(p string) bool {
	if len(p) != GeneratedLen {
		return false
	}
	for i := range len(p) {
		if b64url[p[i]] == 0xff {
			return false
		}
	}
	return b64url[p[GeneratedLen-1]]&0x0f == 0
}

// Argon2Params are the argon2id parameters for passwords a person chose.
type Argon2Params struct {
	Time      uint32 // passes over the memory
	MemoryKiB uint32
	Threads   uint8
	KeyLen    uint32 // bytes of hash
	SaltLen   int    // bytes of random salt
}

// DefaultArgon2Params is OWASP's minimum for argon2id: 19 MiB, 2 passes,
// one thread.
var DefaultArgon2Params = Argon2Params{Time: 2, MemoryKiB: 19456, Threads: 1, KeyLen: 32, SaltLen: 16}

// Bounds on argon2id parameters, for the configuration and for stored
// hashes alike (so a tampered hash cannot ask for 4 TiB).
const (
	MaxArgon2Time      = 100
	MaxArgon2MemoryKiB = 4 << 20 // 4 GiB
	minKeyLen          = 16
	maxKeyLen          = 128
	minSaltLen         = 8
	maxSaltLen         = 64
)

// Validate says why p cannot be used.
func (p Argon2Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > MaxArgon2Time:
		return fmt.Errorf("argon2 time %d is out of range 1 to %d", p.Time, MaxArgon2Time)
	case p.Threads < 1:
		return errors.New("argon2 threads 0 is out of range 1 to 255")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxArgon2MemoryKiB:
		return fmt.Errorf("argon2 memory_kib %d is out of range %d (8 per thread) to %d", p.MemoryKiB, 8*uint32(p.Threads), MaxArgon2MemoryKiB)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2 key length %d is out of range %d to %d bytes", p.KeyLen, minKeyLen, maxKeyLen)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2 salt length %d is out of range %d to %d bytes", p.SaltLen, minSaltLen, maxSaltLen)
	}
	return nil
}

// Hasher hashes and checks ticket passwords. It is safe for concurrent use
// and must not be copied.
type Hasher struct {
	key []byte
	// previous are the keys of the secrets rotated out: a generated
	// password is checked under each as well, so that tickets made before a
	// rotation keep working. Every check computes all of them, so the work
	// still depends on the password's shape alone.
	previous [][]byte
	params   Argon2Params
	// Compared against when there is no hash of the right kind, so that the
	// work is the same.
	dummyMAC    []byte
	dummyArgon2 phc
	dummyPHC    []byte // dummyArgon2 encoded

	// argon2Slots bounds concurrent argon2id runs: each takes MemoryKiB of
	// memory and a core for tens of milliseconds, and anyone can make the
	// gateway run one by sending a password. Requests beyond it wait.
	argon2Slots chan struct{}

	// Counted for the tests of the timing rule.
	hmacCalls, argon2Calls atomic.Int64
}

// NewHasher derives the ticket key from the gateway secret; p applies to the
// argon2id hashes it makes (and to the dummy checked for unknown tickets).
// Generated passwords of tickets made under the previous secrets verify
// too; new ones are hashed under gatewaySecret. (Chosen passwords are
// argon2id, which no secret keys.)
func NewHasher(gatewaySecret []byte, p Argon2Params, previous ...[]byte) (*Hasher, error) {
	if len(gatewaySecret) == 0 {
		return nil, errors.New("ticket hasher: empty gateway secret")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	h := &Hasher{key: keys.Derive(gatewaySecret, "ticket"), params: p, argon2Slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for _, s := range previous {
		h.previous = append(h.previous, keys.Derive(s, "ticket"))
	}
	h.dummyMAC = make([]byte, sha256.Size)
	salt := make([]byte, p.SaltLen)
	hash := make([]byte, p.KeyLen)
	for _, b := range [][]byte{h.dummyMAC, salt, hash} {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("ticket hasher: %w", err)
		}
	}
	h.dummyArgon2 = phc{time: p.Time, memory: p.MemoryKiB, threads: p.Threads, salt: salt, hash: hash}
	h.dummyPHC = h.dummyArgon2.encode()
	return h, nil
}

// Params returns the argon2id parameters new hashes are made with.
func (h *Hasher) Params() Argon2Params { return h.params }

// HashGenerated returns the keyed hash (kind KindKeyed) of a generated
// password; anything that does not look generated is an error.
func (h *Hasher) HashGenerated(password string) ([]byte, error) {
	if !LooksGenerated(password) {
		return nil, errors.New("not a generated password: want 22 base64url characters (128 bits)")
	}
	return h.mac(h.key, password), nil
}

// HashChosen returns the argon2id hash (kind KindArgon2id), as a PHC string,
// of a password a person chose. It refuses an empty password, one over
// MaxPasswordBytes, one that is not UTF-8 or has control characters or
// surrounding white space (it could not be typed or sent in a header), and
// one that looks generated (ErrGeneratedShape).
func (h *Hasher) HashChosen(password string) ([]byte, error) {
	switch {
	case password == "":
		return nil, errors.New("empty password")
	case len(password) > MaxPasswordBytes:
		return nil, fmt.Errorf("password is %d bytes, over the limit of %d", len(password), MaxPasswordBytes)
	case !utf8.ValidString(password):
		return nil, errors.New("password is not valid UTF-8")
	case strings.IndexFunc(password, unicode.IsControl) >= 0:
		return nil, errors.New("password has a control character")
	case strings.TrimSpace(password) != password:
		return nil, errors.New("password starts or ends with white space")
	case LooksGenerated(password):
		return nil, ErrGeneratedShape
	}
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("hashing ticket password: %w", err)
	}
	p := phc{time: h.params.Time, memory: h.params.MemoryKiB, threads: h.params.Threads, salt: salt}
	p.hash = h.argon2(password, p, h.params.KeyLen)
	return p.encode(), nil
}

// Verify says whether password matches a stored hash of the given kind. It
// follows the same path as Check: the password's shape picks the hash that
// is computed, so a generated-looking password never matches an argon2id
// hash, nor another one a keyed hash.
func (h *Hasher) Verify(stored []byte, kind, password string) bool {
	return h.check(true, stored, kind, password)
}

// Check says whether password opens t, which is nil when the uuid is
// unknown. Whatever t is, the work depends only on the password's shape (see
// the package comment): a wrong password, an unknown uuid and a ticket of
// the other kind cost the same. Empty passwords and those over
// MaxPasswordBytes are refused without hashing.
func (h *Hasher) Check(t *store.Ticket, password string) bool {
	if t == nil {
		return h.check(false, nil, "", password)
	}
	return h.check(true, t.PasswordHash, t.PasswordKind, password)
}

func (h *Hasher) check(present bool, stored []byte, kind, password string) bool {
	if password == "" || len(password) > MaxPasswordBytes {
		return false
	}
	if LooksGenerated(password) {
		ok := present && kind == KindKeyed
		want := h.dummyMAC
		if ok {
			want = stored
		}
		match := hmac.Equal(h.mac(h.key, password), want)
		for _, k := range h.previous {
			match = hmac.Equal(h.mac(k, password), want) || match
		}
		return match && ok
	}
	// The dummy is parsed too, so that even the parsing is the same work.
	ok := present && kind == KindArgon2id
	src := h.dummyPHC
	if ok {
		src = stored
	}
	want, err := parsePHC(src)
	if err != nil {
		ok, want = false, h.dummyArgon2 // a corrupt stored hash
	}
	got := h.argon2(password, want, uint32(len(want.hash)))
	return subtle.ConstantTimeCompare(got, want.hash) == 1 && ok
}

func (h *Hasher) mac(key []byte, password string) []byte {
	h.hmacCalls.Add(1)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(password))
	return m.Sum(nil)
}

func (h *Hasher) argon2(password string, p phc, keyLen uint32) []byte {
	h.argon2Calls.Add(1)
	h.argon2Slots <- struct{}{}
	defer func() { <-h.argon2Slots }()
	return argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, keyLen)
}

// phc is a parsed $argon2id$v=19$m=…,t=…,p=…$salt$hash string.
type phc struct {
	time, memory uint32
	threads      uint8
	salt, hash   []byte
}

var b64 = base64.RawStdEncoding.Strict()

func (p phc) encode() []byte {
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(p.salt), b64.EncodeToString(p.hash))
}

// parsePHC reads an argon2id PHC string strictly: version 19, the
// parameters in the order m, t, p, in decimal without leading zeros, and
// within the bounds Validate sets.
func parsePHC(s []byte) (phc, error) {
	var p phc
	parts := strings.Split(string(s), "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, errors.New("not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, fmt.Errorf("argon2id version %q is not supported", parts[2])
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, errors.New("argon2id parameters: want m=…,t=…,p=…")
	}
	var nums [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], name)
		if !ok || v == "" || (v[0] == '0' && len(v) > 1) || v[0] == '+' {
			return p, fmt.Errorf("argon2id parameter %q: want %s<number>", params[i], name)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, fmt.Errorf("argon2id parameter %q: %w", params[i], err)
		}
		nums[i] = n
	}
	if nums[2] > 255 {
		return p, fmt.Errorf("argon2id threads %d is out of range 1 to 255", nums[2])
	}
	p.memory, p.time, p.threads = uint32(nums[0]), uint32(nums[1]), uint8(nums[2])
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, fmt.Errorf("argon2id salt: %w", err)
	}
	if p.hash, err = b64.DecodeString(parts[5]); err != nil {
		return p, fmt.Errorf("argon2id hash: %w", err)
	}
	err = Argon2Params{Time: p.time, MemoryKiB: p.memory, Threads: p.threads, KeyLen: uint32(len(p.hash)), SaltLen: len(p.salt)}.Validate()
	return p, err
}
