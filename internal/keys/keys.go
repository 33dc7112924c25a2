// Package keys derives the gateway's purpose-bound keys from its one secret,
// so that a hash computed for one kind of credential is never valid for
// another.
package keys

import (
	"crypto/hmac"
	"crypto/sha256"
)

// Derive returns the key for purpose ("session", "invite", …).
func Derive(secret []byte, purpose string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("latchkey/" + purpose))
	return mac.Sum(nil)
}
