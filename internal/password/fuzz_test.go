package password

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, v := range literalVectors {
		f.Add(v.hash)
	}
	for _, m := range malformedHashes {
		f.Add(m.hash)
	}
	for _, s := range []string{okOurs, "$", "$$", "argon2$", "bcrypt$$", "pbkdf2_sha256$$$", "$pbkdf2-sha512$$$", "$argon2id$$$$$", "!"} {
		f.Add(s)
	}
}

// fixedText is what errors say whatever the hash: an input that happens to
// spell a piece of it is not shown by the error.
var fixedText = sync.OnceValue(func() string {
	var b strings.Builder
	for _, m := range malformedHashes {
		b.WriteString(Check(m.hash).Error())
		b.WriteByte('\n')
	}
	return b.String()
})

// checkSecret fails if err shows what may be a salt or a hash of s: the
// last '$'-separated field (always a hash when the fields are right), or
// all of s when it is longer than the 24-byte prefix an unknown scheme's
// error may name.
func checkSecret(t *testing.T, s string, err error) {
	t.Helper()
	last := s[strings.LastIndexByte(s, '$')+1:]
	msg := err.Error()
	if i := strings.IndexByte(s[min(1, len(s)):], '$'); i >= 0 {
		// An unknown scheme's error names the prefix, and only that.
		msg = strings.Replace(msg, strconv.Quote(s[:min(1, len(s))+i+1]), "", 1)
	}
	shown := func(secret string) bool {
		return strings.Contains(msg, secret) && !strings.Contains(fixedText(), secret)
	}
	if len(last) >= 8 && shown(last) || len(s) > 24 && shown(s) {
		t.Fatalf("the error %q shows part of %q", err, s)
	}
}

// FuzzScheme: anything at all is named by its prefix or refused as unknown,
// without a panic and without the error showing more than the prefix.
func FuzzScheme(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		name, err := Scheme(s)
		if err != nil {
			if name != "" || !errors.Is(err, ErrUnknownScheme) {
				t.Fatalf("Scheme(%q) = %q, %v", s, name, err)
			}
			checkSecret(t, s, err)
			return
		}
		for _, sc := range schemes {
			if sc.name == name {
				if !strings.HasPrefix(s, sc.prefix) {
					t.Fatalf("Scheme(%q) = %q without its prefix %q", s, name, sc.prefix)
				}
				return
			}
		}
		t.Fatalf("Scheme(%q) = %q, not a scheme", s, name)
	})
}

// FuzzCheck: Check never panics, and accepts only what re-encodes to
// exactly the same string, within the bounds; anything else is refused as
// unknown or malformed, without showing the hash.
func FuzzCheck(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		err := Check(s)
		if err != nil {
			if !errors.Is(err, ErrUnknownScheme) && !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("Check(%q) = %v: neither unknown nor malformed", s, err)
			}
			checkSecret(t, s, err)
			return
		}
		p, err := parse(s)
		if err != nil {
			t.Fatalf("Check accepts %q, parse says %v", s, err)
		}
		if name, _ := Scheme(s); name != p.scheme {
			t.Fatalf("Check accepts %q as %s, Scheme says %s", s, p.scheme, name)
		}
		if got := p.encode(); got != s {
			t.Fatalf("Check accepts %q, which is not the spelling of what it holds: %q", s, got)
		}
		k := p.kdf
		var bad bool
		switch k.alg {
		case algArgon2id, algArgon2i:
			bad = checkArgon2(k.rounds, k.memKiB, k.threads, k.keyLen, k.saltLen) != nil
		case algPBKDF2SHA256, algPBKDF2SHA512:
			bad = k.rounds < 1 || k.rounds > MaxPBKDF2Iterations || k.saltLen < 1 || k.saltLen > maxPBKDF2SaltLen
		case algBcrypt:
			bad = k.rounds < MinBcryptCost || k.rounds > MaxBcryptCost || len(p.sum) != 60
		default:
			bad = true
		}
		if bad || len(s) > MaxHashBytes {
			t.Fatalf("Check accepts %q with %+v", s, k)
		}
	})
}
