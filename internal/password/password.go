// Package password hashes the passwords people log in with, and verifies the
// hashes that users brought from another application until a successful
// login replaces them.
//
// # Why legacy hashes
//
// `users import` takes users from a legacy application with their password
// hashes as they are: nobody knows the passwords, so they cannot be rehashed,
// and asking every user to reset would lose most of them. Django's
// pbkdf2_sha256$…, argon2$…, bcrypt_sha256$… and bcrypt$…, and passlib's
// $pbkdf2-sha512$… (Invenio) are verified exactly as the application that
// made them would, and Verify reports needsUpgrade on the first successful
// login so that the caller stores our own argon2id in their place.
//
// Check parses a hash completely (bounds on its cost, decodable salt and
// hash, their lengths), so that the import refuses a bad row with its reason
// instead of a user finding out at login. Scheme names the scheme for
// `users show`, which must never show the hash itself; no error of this
// package contains a password, a salt or a hash.
//
// # Our own hashes
//
// New hashes are argon2id PHC strings, $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>,
// which carry their parameters: changing Params later leaves old hashes
// verifiable, and Verify marks them for upgrade.
//
// # Cost, and what the time of a login tells
//
// A password hash is the expensive part of a login, and anyone can ask for
// one by submitting a form. So the caller hashes only after its throttle of
// failed attempts admitted the attempt, and a Hasher bounds how many hashes
// run at once (waiting for a turn honours the context).
//
// An unknown account must cost what a wrong password costs, or the time of
// an answer says which accounts exist: Hasher.VerifyUnknown runs the same
// derivation, with the same parameters, as a hash under the current Params.
// What the time can still tell apart is an account whose hash has another
// cost: a legacy hash runs its own algorithm with its own iterations, and an
// argon2id hash made under older Params runs those. Each is replaced at its
// owner's next successful login, so the difference fades as people log in.
//
// Passwords are bytes as submitted (UTF-8 from a form), compared byte for
// byte, with no Unicode normalisation: Django and passlib's pbkdf2 do the
// same, so a legacy hash verifies the password its owner types.
package password

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// Schemes, as Scheme names them (and `users show` prints them).
const (
	SchemeArgon2id            = "argon2id"              // ours: $argon2id$v=19$…
	SchemeDjangoPBKDF2SHA256  = "django_pbkdf2_sha256"  // pbkdf2_sha256$<iterations>$<salt>$<hash>
	SchemeDjangoArgon2        = "django_argon2"         // argon2$argon2id$v=19$… or argon2$argon2i$v=19$…
	SchemeDjangoBcryptSHA256  = "django_bcrypt_sha256"  // bcrypt_sha256$$2b$<cost>$…
	SchemeDjangoBcrypt        = "django_bcrypt"         // bcrypt$$2b$<cost>$…
	SchemePasslibPBKDF2SHA512 = "passlib_pbkdf2_sha512" // $pbkdf2-sha512$<rounds>$<salt>$<checksum>
)

// schemes are told apart by these prefixes; none is a prefix of another.
var schemes = []struct{ prefix, name string }{
	{"$argon2id$", SchemeArgon2id},
	{"pbkdf2_sha256$", SchemeDjangoPBKDF2SHA256},
	{"argon2$", SchemeDjangoArgon2},
	{"bcrypt_sha256$", SchemeDjangoBcryptSHA256},
	{"bcrypt$", SchemeDjangoBcrypt},
	{"$pbkdf2-sha512$", SchemePasslibPBKDF2SHA512},
}

// Limits on what is hashed and on what a stored hash may ask for.
const (
	// MaxPasswordBytes bounds the work one attempt can ask for; a longer
	// password is refused before any hashing.
	MaxPasswordBytes = 1024
	// MaxHashBytes bounds a stored hash. Django's column holds 128
	// characters; passlib's longest sensible salt fits well within.
	MaxHashBytes = 1024

	// MaxPBKDF2Iterations bounds a legacy PBKDF2 hash's iterations (Django
	// 6.0 uses 1,200,000; passlib's pbkdf2_sha512 25,000): a corrupt or
	// tampered row must not make each attempt run for minutes.
	MaxPBKDF2Iterations = 10_000_000
	// MaxBcryptCost bounds a legacy bcrypt hash's log2 cost (Django uses
	// 12); 16 is already 4 s or so per attempt.
	MaxBcryptCost = 16
	// MinBcryptCost is bcrypt's own minimum.
	MinBcryptCost = 4

	// Bounds on argon2 parameters, for Params and stored hashes alike (so
	// that a tampered hash cannot ask for 4 TiB).
	MaxArgon2Time      = 100
	MaxArgon2MemoryKiB = 4 << 20 // 4 GiB
	minArgon2KeyLen    = 16      // argon2-cffi's default, hence Django's
	maxArgon2KeyLen    = 128
	minArgon2SaltLen   = 8 // the argon2 specification's minimum
	maxArgon2SaltLen   = 64

	// Legacy PBKDF2 salts: Django's is text (12 or 22 characters in
	// practice), passlib's 16 random bytes by default.
	maxPBKDF2SaltLen = 256
)

// Errors. The ones about a hash are wrapped with what failed; none contains
// a password, a salt or a hash.
var (
	ErrEmptyPassword    = errors.New("empty password")
	ErrPasswordTooLong  = fmt.Errorf("password is longer than %d bytes", MaxPasswordBytes)
	ErrUnknownScheme    = errors.New("unknown password hash scheme")
	ErrMalformedHash    = errors.New("malformed password hash")
	ErrUnusablePassword = errors.New("unusable password: Django's mark of a user who has none")
)

// Params are the argon2id parameters of new hashes.
type Params struct {
	MemoryKiB uint32 // memory per hash, in KiB
	Time      uint32 // passes over the memory
	Threads   uint8  // lanes, each run by its own goroutine
	KeyLen    uint32 // bytes of hash
	SaltLen   uint32 // bytes of random salt
}

// DefaultParams is OWASP's minimum for argon2id: 19 MiB, 2 passes, one
// thread, a 32-byte key and a 16-byte salt.
var DefaultParams = Params{MemoryKiB: 19456, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}

// Validate says why p cannot be used.
func (p Params) Validate() error {
	return checkArgon2(p.Time, p.MemoryKiB, p.Threads, int(p.KeyLen), int(p.SaltLen))
}

func checkArgon2(time, memoryKiB uint32, threads uint8, keyLen, saltLen int) error {
	switch {
	case time < 1 || time > MaxArgon2Time:
		return fmt.Errorf("argon2 time %d is out of range 1 to %d", time, MaxArgon2Time)
	case threads < 1:
		return errors.New("argon2 threads 0 is out of range 1 to 255")
	case memoryKiB < 8*uint32(threads) || memoryKiB > MaxArgon2MemoryKiB:
		return fmt.Errorf("argon2 memory %d KiB is out of range %d (8 per thread) to %d", memoryKiB, 8*uint32(threads), MaxArgon2MemoryKiB)
	case keyLen < minArgon2KeyLen || keyLen > maxArgon2KeyLen:
		return fmt.Errorf("argon2 key length %d is out of range %d to %d bytes", keyLen, minArgon2KeyLen, maxArgon2KeyLen)
	case saltLen < minArgon2SaltLen || saltLen > maxArgon2SaltLen:
		return fmt.Errorf("argon2 salt length %d is out of range %d to %d bytes", saltLen, minArgon2SaltLen, maxArgon2SaltLen)
	}
	return nil
}

func (p Params) kdf() kdf {
	return kdf{alg: algArgon2id, rounds: p.Time, memKiB: p.MemoryKiB, threads: p.Threads, saltLen: int(p.SaltLen), keyLen: int(p.KeyLen)}
}

// Scheme names the scheme of a stored hash (one of the Scheme constants)
// from its prefix alone; Check says whether the rest is valid. Anything else
// is an error wrapping ErrUnknownScheme that shows at most the prefix.
func Scheme(hash string) (string, error) {
	for _, s := range schemes {
		if strings.HasPrefix(hash, s.prefix) {
			return s.name, nil
		}
	}
	return "", unknownScheme(hash)
}

// Check parses a stored hash completely, as Verify would, and says why it
// cannot be verified: an unknown scheme (ErrUnknownScheme), or a hash of a
// known scheme that is malformed or asks for an unreasonable cost
// (ErrMalformedHash). A hash Check accepts is the one spelling of its
// contents: the application that made it would have written it so.
func Check(hash string) error {
	_, err := parse(hash)
	return err
}

// Hash returns the argon2id PHC string of password under p, with a random
// salt. It does not wait for a turn: request paths use Hasher.Hash, which
// does.
func Hash(password string, p Params) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if err := checkPassword(password); err != nil {
		return "", err
	}
	return newArgon2id(password, p), nil
}

func newArgon2id(password string, p Params) string {
	s := &stored{scheme: SchemeArgon2id, kdf: p.kdf(), salt: make([]byte, p.SaltLen)}
	rand.Read(s.salt) // never fails (crypto/rand, Go 1.24+)
	s.sum = s.derive(password)
	return s.encode()
}

// Verify says whether password matches a stored hash of any scheme, and
// whether the caller should replace the hash with Hash's now that it knows
// the password (only ever true together with ok): always for a legacy
// scheme, and for argon2id made under parameters other than DefaultParams.
// It waits for a turn among all callers of the package's Verify; a gateway
// with its own Params uses its own Hasher.
func Verify(ctx context.Context, password, hash string) (ok, needsUpgrade bool, err error) {
	return defaultHasher().Verify(ctx, password, hash)
}

func checkPassword(password string) error {
	switch {
	case password == "":
		return ErrEmptyPassword
	case len(password) > MaxPasswordBytes:
		return ErrPasswordTooLong
	}
	return nil
}

func malformed(scheme, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformedHash, scheme, fmt.Sprintf(format, args...))
}

// unknownScheme says what prefix the hash has, so that the import's error
// tells which application it came from, without showing any of the rest.
func unknownScheme(hash string) error {
	const known = "want argon2id, or Django's pbkdf2_sha256, argon2, bcrypt_sha256 or bcrypt, or passlib's pbkdf2-sha512"
	if hash == "" {
		return fmt.Errorf("%w: the hash is empty; %s", ErrUnknownScheme, known)
	}
	if hash[0] == '!' {
		return fmt.Errorf("%w (%w)", ErrUnknownScheme, ErrUnusablePassword)
	}
	start := 0
	if hash[0] == '$' {
		start = 1
	}
	i := strings.IndexByte(hash[start:], '$')
	if i < 0 {
		return fmt.Errorf("%w: the hash has no $-separated prefix naming its scheme (%d bytes); %s", ErrUnknownScheme, len(hash), known)
	}
	prefix := hash[:start+i+1]
	if len(prefix) > 24 || strings.IndexFunc(prefix, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("$_-.", r))
	}) >= 0 {
		return fmt.Errorf("%w: the hash's prefix is not a scheme name (%d bytes before the first $); %s", ErrUnknownScheme, len(prefix)-1, known)
	}
	return fmt.Errorf("%w %q; %s", ErrUnknownScheme, prefix, known)
}
