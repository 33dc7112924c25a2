package password

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

type alg uint8

const (
	algArgon2id alg = iota + 1
	algArgon2i
	algPBKDF2SHA256
	algPBKDF2SHA512
	algBcrypt
)

func (a alg) String() string {
	switch a {
	case algArgon2id:
		return "argon2id"
	case algArgon2i:
		return "argon2i"
	case algPBKDF2SHA256:
		return "pbkdf2-sha256"
	case algPBKDF2SHA512:
		return "pbkdf2-sha512"
	case algBcrypt:
		return "bcrypt"
	}
	return "alg(" + strconv.Itoa(int(a)) + ")"
}

// kdf is the key derivation that verifying a hash runs, with everything its
// cost depends on: two verifications with equal kdfs do the same work. It
// also says whether an argon2id hash was made under the current Params.
type kdf struct {
	alg     alg
	rounds  uint32 // argon2 passes, PBKDF2 iterations, or bcrypt's log2 cost
	memKiB  uint32 // argon2
	threads uint8  // argon2
	saltLen int
	keyLen  int
}

// stored is a parsed hash.
type stored struct {
	scheme string
	kdf    kdf
	salt   []byte // as the derivation takes it (Django's PBKDF2 salt is text)
	sum    []byte // the derived key; for bcrypt the whole $2b$… string, which x/crypto/bcrypt compares
}

var (
	// argon2's PHC strings, as argon2-cffi (Django) and we write them.
	b64 = base64.RawStdEncoding.Strict()
	// Django's PBKDF2 hash: base64.b64encode, padded.
	b64Padded = base64.StdEncoding.Strict()
	// passlib's "adapted base64" (ab64): standard base64 with '.' for '+',
	// unpadded.
	ab64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./").WithPadding(base64.NoPadding).Strict()
	// bcrypt's own alphabet, unpadded.
	bcryptB64 = base64.NewEncoding("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789").WithPadding(base64.NoPadding).Strict()
)

// decode is enc's strict decoding, which still skips '\r' and '\n': they are
// refused here so that a valid field has one spelling.
func decode(enc *base64.Encoding, s string) ([]byte, bool) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	b, err := enc.DecodeString(s)
	return b, err == nil
}

// parseDecimal reads a number as Python's "%d" writes it: digits only, no
// sign, no leading zero. Ten digits cover every uint32.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// parse reads a stored hash of any scheme. The checks on fields' counts come
// before anything is read from a field, so that an error never shows a
// field that was in fact a salt or a hash.
func parse(hash string) (*stored, error) {
	scheme, err := Scheme(hash)
	if err != nil {
		return nil, err
	}
	if len(hash) > MaxHashBytes {
		return nil, malformed(scheme, "%d bytes, over the limit of %d", len(hash), MaxHashBytes)
	}
	switch scheme {
	case SchemeArgon2id:
		return parseArgon2(scheme, hash)
	case SchemeDjangoArgon2:
		// Django stores "argon2" followed by argon2-cffi's encoded hash.
		return parseArgon2(scheme, strings.TrimPrefix(hash, "argon2"))
	case SchemeDjangoPBKDF2SHA256:
		return parsePBKDF2(scheme, strings.TrimPrefix(hash, "pbkdf2_sha256$"), algPBKDF2SHA256)
	case SchemePasslibPBKDF2SHA512:
		return parsePBKDF2(scheme, strings.TrimPrefix(hash, "$pbkdf2-sha512$"), algPBKDF2SHA512)
	case SchemeDjangoBcryptSHA256:
		return parseBcrypt(scheme, strings.TrimPrefix(hash, "bcrypt_sha256$"))
	default: // SchemeDjangoBcrypt
		return parseBcrypt(scheme, strings.TrimPrefix(hash, "bcrypt$"))
	}
}

// parseArgon2 reads $<variant>$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
// strictly: what argon2-cffi and the reference implementation write.
func parseArgon2(scheme, phc string) (*stored, error) {
	f := strings.Split(phc, "$")
	if len(f) == 5 && strings.HasPrefix(f[2], "m=") {
		return nil, malformed(scheme, "no v= field, so argon2 version 16 (1.0), which golang.org/x/crypto/argon2 does not implement; only v=19 (1.3) can be verified")
	}
	if len(f) != 6 {
		return nil, malformed(scheme, "want $<variant>$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>: found %d $-separated fields, want 5", len(f)-1)
	}
	s := &stored{scheme: scheme}
	switch {
	case f[1] == "argon2id":
		s.kdf.alg = algArgon2id
	case f[1] == "argon2i" && scheme == SchemeDjangoArgon2:
		// Django's default before argon2id (Django ticket #30472, 2019).
		s.kdf.alg = algArgon2i
	case f[1] == "argon2d":
		return nil, malformed(scheme, "variant argon2d is not supported (golang.org/x/crypto/argon2 has argon2i and argon2id)")
	default:
		return nil, malformed(scheme, "unknown argon2 variant; want argon2id or argon2i")
	}
	v, ok := strings.CutPrefix(f[2], "v=")
	n, okn := parseDecimal(v)
	switch {
	case !ok || !okn:
		return nil, malformed(scheme, "the field after the variant is not v=<version>")
	case n != argon2.Version:
		return nil, malformed(scheme, "argon2 version %d is not supported, only %d (1.3)", n, argon2.Version)
	}
	ps := strings.Split(f[3], ",")
	var m, t, p uint64
	if len(ps) == 3 {
		var okm, okt, okp bool
		m, okm = param(ps[0], "m=")
		t, okt = param(ps[1], "t=")
		p, okp = param(ps[2], "p=")
		ok = okm && okt && okp
	}
	switch {
	case len(ps) != 3 || !ok:
		return nil, malformed(scheme, "parameters: want m=<KiB>,t=<passes>,p=<lanes>, in that order, in decimal")
	case m > MaxArgon2MemoryKiB:
		return nil, malformed(scheme, "argon2 memory %d KiB is over the limit of %d", m, MaxArgon2MemoryKiB)
	case t > MaxArgon2Time:
		return nil, malformed(scheme, "argon2 time %d is over the limit of %d", t, MaxArgon2Time)
	case p > 255:
		return nil, malformed(scheme, "argon2 threads %d is over the limit of 255", p)
	}
	if s.salt, ok = decode(b64, f[4]); !ok {
		return nil, malformed(scheme, "salt is not unpadded base64 (%d characters)", len(f[4]))
	}
	if s.sum, ok = decode(b64, f[5]); !ok {
		return nil, malformed(scheme, "hash is not unpadded base64 (%d characters)", len(f[5]))
	}
	if err := checkArgon2(uint32(t), uint32(m), uint8(p), len(s.sum), len(s.salt)); err != nil {
		return nil, malformed(scheme, "%v", err)
	}
	s.kdf.rounds, s.kdf.memKiB, s.kdf.threads = uint32(t), uint32(m), uint8(p)
	s.kdf.saltLen, s.kdf.keyLen = len(s.salt), len(s.sum)
	return s, nil
}

func param(s, name string) (uint64, bool) {
	v, ok := strings.CutPrefix(s, name)
	if !ok {
		return 0, false
	}
	return parseDecimal(v)
}

// parsePBKDF2 reads the fields after the prefix: Django's
// <iterations>$<salt text>$<padded base64 of 32 bytes>, or passlib's
// <rounds>$<ab64 salt>$<ab64 of 64 bytes>.
func parsePBKDF2(scheme, rest string, a alg) (*stored, error) {
	f := strings.Split(rest, "$")
	if len(f) != 3 {
		return nil, malformed(scheme, "want <iterations>$<salt>$<hash> after the prefix: found %d $-separated fields, want 3", len(f))
	}
	n, ok := parseDecimal(f[0])
	switch {
	case !ok:
		return nil, malformed(scheme, "iterations are not a decimal number without leading zeros")
	case n < 1 || n > MaxPBKDF2Iterations:
		return nil, malformed(scheme, "%d iterations are out of range 1 to %d", n, MaxPBKDF2Iterations)
	}
	s := &stored{scheme: scheme, kdf: kdf{alg: a, rounds: uint32(n)}}
	want := sha256.Size
	if a == algPBKDF2SHA256 {
		// Django hashes the salt's text as UTF-8; '$' cannot be in it.
		switch {
		case f[1] == "":
			return nil, malformed(scheme, "empty salt")
		case !utf8.ValidString(f[1]):
			return nil, malformed(scheme, "salt is not UTF-8 text")
		}
		s.salt = []byte(f[1])
		if s.sum, ok = decode(b64Padded, f[2]); !ok {
			return nil, malformed(scheme, "hash is not padded base64 (%d characters)", len(f[2]))
		}
	} else {
		want = sha512.Size
		if s.salt, ok = decode(ab64, f[1]); !ok {
			return nil, malformed(scheme, "salt is not passlib's adapted base64 (%d characters)", len(f[1]))
		}
		if len(s.salt) == 0 {
			return nil, malformed(scheme, "empty salt")
		}
		if s.sum, ok = decode(ab64, f[2]); !ok {
			return nil, malformed(scheme, "checksum is not passlib's adapted base64 (%d characters)", len(f[2]))
		}
	}
	switch {
	case len(s.salt) > maxPBKDF2SaltLen:
		return nil, malformed(scheme, "salt is %d bytes, over the limit of %d", len(s.salt), maxPBKDF2SaltLen)
	case len(s.sum) != want:
		return nil, malformed(scheme, "hash is %d bytes, want %d (the %s output)", len(s.sum), want, a)
	}
	s.kdf.saltLen, s.kdf.keyLen = len(s.salt), len(s.sum)
	return s, nil
}

// parseBcrypt reads the 60 characters $2b$<cost>$<22 of salt><31 of hash>
// that Django stores after "bcrypt$" or "bcrypt_sha256$".
func parseBcrypt(scheme, b string) (*stored, error) {
	if len(b) != 60 || b[0] != '$' || b[1] != '2' || b[3] != '$' || b[6] != '$' {
		return nil, malformed(scheme, "want $2b$<cost>$ and 53 characters of salt and hash after the prefix (60 in all): found %d characters", len(b))
	}
	switch b[2] {
	case 'a', 'b', 'y':
		// The same computation for passwords of up to 72 bytes, which is
		// all bcrypt reads.
	case 'x':
		return nil, malformed(scheme, "variant $2x$ (crypt_blowfish's emulation of its 8-bit bug) is not supported")
	default:
		return nil, malformed(scheme, "unknown bcrypt variant; want $2a$, $2b$ or $2y$")
	}
	if b[4] < '0' || b[4] > '9' || b[5] < '0' || b[5] > '9' {
		return nil, malformed(scheme, "cost is not two decimal digits")
	}
	cost := int(b[4]-'0')*10 + int(b[5]-'0')
	if cost < MinBcryptCost || cost > MaxBcryptCost {
		return nil, malformed(scheme, "cost %d is out of range %d to %d", cost, MinBcryptCost, MaxBcryptCost)
	}
	// bcrypt writes 16 bytes of salt and 23 of hash with the unused bits
	// zero; a string with them set was not made by bcrypt, and Django, which
	// compares the whole string, would never accept it.
	salt, ok := decode(bcryptB64, b[7:29])
	if !ok || len(salt) != 16 {
		return nil, malformed(scheme, "salt is not 22 characters of bcrypt's base64 with the unused bits zero")
	}
	if sum, ok := decode(bcryptB64, b[29:]); !ok || len(sum) != 23 {
		return nil, malformed(scheme, "hash is not 31 characters of bcrypt's base64 with the unused bits zero")
	}
	return &stored{
		scheme: scheme,
		kdf:    kdf{alg: algBcrypt, rounds: uint32(cost), saltLen: len(salt), keyLen: 23},
		salt:   salt,
		sum:    []byte(b),
	}, nil
}

// encode writes s back as its scheme spells it: for a hash that parse
// accepted, exactly the string it read.
func (s *stored) encode() string {
	k := s.kdf
	switch s.scheme {
	case SchemeArgon2id, SchemeDjangoArgon2:
		prefix := ""
		if s.scheme == SchemeDjangoArgon2 {
			prefix = "argon2"
		}
		return fmt.Sprintf("%s$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", prefix, k.alg, argon2.Version,
			k.memKiB, k.rounds, k.threads, b64.EncodeToString(s.salt), b64.EncodeToString(s.sum))
	case SchemeDjangoPBKDF2SHA256:
		return fmt.Sprintf("pbkdf2_sha256$%d$%s$%s", k.rounds, s.salt, b64Padded.EncodeToString(s.sum))
	case SchemePasslibPBKDF2SHA512:
		return fmt.Sprintf("$pbkdf2-sha512$%d$%s$%s", k.rounds, ab64.EncodeToString(s.salt), ab64.EncodeToString(s.sum))
	case SchemeDjangoBcryptSHA256:
		return "bcrypt_sha256$" + string(s.sum)
	case SchemeDjangoBcrypt:
		return "bcrypt$" + string(s.sum)
	}
	return ""
}

// match runs s's derivation on password and compares in constant time.
func (s *stored) match(password string) (bool, error) {
	if s.kdf.alg == algBcrypt {
		in := []byte(password)
		if s.scheme == SchemeDjangoBcryptSHA256 {
			// Django's BCryptSHA256PasswordHasher: bcrypt of the
			// lower-case hex of SHA-256(password), 64 ASCII bytes, so
			// that nothing is cut off.
			d := sha256.Sum256(in)
			in = hex.AppendEncode(nil, d[:])
		} else if len(in) > 72 {
			// Django's BCryptPasswordHasher hands the whole password to
			// pyca/bcrypt, which before 5.0 cut it at 72 bytes (5.0
			// raises instead, so no hash of a longer password was made
			// any other way). The first 72 bytes are what was hashed.
			in = in[:72]
		}
		// CompareHashAndPassword compares in constant time.
		return bcrypt.CompareHashAndPassword(s.sum, in) == nil, nil
	}
	got, err := s.deriveErr(password)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, s.sum) == 1, nil
}

// derive is deriveErr for argon2, which cannot fail.
func (s *stored) derive(password string) []byte {
	b, _ := s.deriveErr(password)
	return b
}

func (s *stored) deriveErr(password string) ([]byte, error) {
	k := s.kdf
	switch k.alg {
	case algArgon2id:
		return argon2.IDKey([]byte(password), s.salt, k.rounds, k.memKiB, k.threads, uint32(k.keyLen)), nil
	case algArgon2i:
		return argon2.Key([]byte(password), s.salt, k.rounds, k.memKiB, k.threads, uint32(k.keyLen)), nil
	case algPBKDF2SHA256, algPBKDF2SHA512:
		h := sha256.New
		if k.alg == algPBKDF2SHA512 {
			h = sha512.New
		}
		// crypto/pbkdf2 fails only in FIPS 140-only mode.
		key, err := pbkdf2.Key(h, password, s.salt, int(k.rounds), k.keyLen)
		if err != nil {
			return nil, fmt.Errorf("verifying a %s hash: %w", s.scheme, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("verifying a %s hash: no derivation for %s", s.scheme, k.alg)
}
