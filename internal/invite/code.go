// Package invite holds invite codes: their format, generation and keyed
// hashing, and the rules that decide whether a code may log someone in.
package invite

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/internal/keys"
)

// Code lengths: letters then three digits, e.g. ABCXYZ123.
const (
	MinLength     = 6
	MaxLength     = 30
	DefaultLength = 9
	digits        = 3
)

// Defaults for the rules.
const (
	DefaultUsageWindow = 14 * 24 * time.Hour
	DefaultExpiry      = 30 * 24 * time.Hour
)

// CheckLength says why a configured code length cannot be used.
func CheckLength(n int) error {
	if n < MinLength || n > MaxLength {
		return fmt.Errorf("invite code length %d is out of range: codes are %d to %d characters (three or more letters, then three digits)", n, MinLength, MaxLength)
	}
	return nil
}

// Generate returns a new random code of length n from crypto/rand.
func Generate(n int) (string, error) {
	if err := CheckLength(n); err != nil {
		return "", err
	}
	b := make([]byte, n)
	for i := range b {
		set, size := byte('A'), byte(26)
		if i >= n-digits {
			set, size = '0', 10
		}
		c, err := uniform(size)
		if err != nil {
			return "", fmt.Errorf("generating invite code: %w", err)
		}
		b[i] = set + c
	}
	return string(b), nil
}

// uniform draws from [0, n) without modulo bias.
func uniform(n byte) (byte, error) {
	limit := 256 - 256%int(n)
	var buf [1]byte
	for {
		if _, err := rand.Read(buf[:]); err != nil {
			return 0, err
		}
		if int(buf[0]) < limit {
			return buf[0] % n, nil
		}
	}
}

// Normalize turns what a person typed into a code: surrounding white space
// and lower case are forgiven. It reports false if the result cannot be a
// code of any allowed length, so that a malformed entry costs no lookup.
func Normalize(input string) (string, bool) {
	s := strings.TrimSpace(input)
	if len(s) < MinLength || len(s) > MaxLength {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
			b[i] = c
		}
		if i < len(b)-digits {
			if c < 'A' || c > 'Z' {
				return "", false
			}
		} else if c < '0' || c > '9' {
			return "", false
		}
	}
	return string(b), true
}

// Hasher computes the keyed hash under which codes are stored. Codes are
// short, so a plain hash could be reversed by trying them all; a key that
// lives only in the gateway's secret prevents that for anyone holding a copy
// of the database alone.
type Hasher struct{ key []byte }

// NewHasher derives the invite key from the gateway secret.
func NewHasher(secret []byte) Hasher {
	return Hasher{key: keys.Derive(secret, "invite")}
}

// Hash returns the keyed hash of a normalised code.
func (h Hasher) Hash(code string) []byte {
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(code))
	return mac.Sum(nil)
}
