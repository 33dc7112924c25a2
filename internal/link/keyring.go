package link

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/internal/keys"
)

// Algorithms a Key may use.
const (
	AlgHS256 = "HS256"
	AlgEdDSA = "EdDSA"
)

// minHS256Secret is the shortest HS256 key accepted, in bytes.
const minHS256Secret = 32

// Key is one key of a KeyRing.
type Key struct {
	ID  string // kid; non-empty, unique in the ring
	Alg string // AlgHS256 or AlgEdDSA
	// Secret is the HS256 key (at least 32 bytes).
	Secret []byte
	// Private signs EdDSA tokens; a key without it only verifies (it cannot
	// be a ring's first key).
	Private ed25519.PrivateKey
	// Public verifies EdDSA tokens; derived from Private when empty.
	Public ed25519.PublicKey
}

// HS256Key is the HS256 key kid derived from the gateway secret; the
// gateway's default key is HS256Key(secret, "default").
func HS256Key(gatewaySecret []byte, kid string) Key {
	return Key{ID: kid, Alg: AlgHS256, Secret: keys.Derive(gatewaySecret, "link:"+kid)}
}

// Ed25519Key is an EdDSA signing key.
func Ed25519Key(kid string, priv ed25519.PrivateKey) Key {
	k := Key{ID: kid, Alg: AlgEdDSA, Private: priv}
	if len(priv) == ed25519.PrivateKeySize {
		k.Public = priv.Public().(ed25519.PublicKey)
	}
	return k
}

// ParseEd25519PrivateKeyPEM reads an Ed25519 private key from a PKCS#8 PEM
// block ("PRIVATE KEY"), as `openssl genpkey -algorithm ed25519` writes it.
func ParseEd25519PrivateKeyPEM(pemBytes []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found (want a PKCS#8 \"PRIVATE KEY\" block, e.g. from `openssl genpkey -algorithm ed25519`)")
	}
	switch block.Type {
	case "PRIVATE KEY":
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("encrypted private keys are not supported; decrypt it first (`openssl pkey -in key.pem -out plain.pem`)")
	case "OPENSSH PRIVATE KEY":
		return nil, errors.New("OpenSSH private keys are not supported; use PKCS#8 (`openssl genpkey -algorithm ed25519`)")
	default:
		return nil, fmt.Errorf("PEM block is %q, want \"PRIVATE KEY\" (PKCS#8)", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS#8 private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, not Ed25519", k)
	}
	return priv, nil
}

// Ed25519PublicKey is a verify-only EdDSA key: the public half of a key an
// app signs its own links with. It cannot be a ring's first key.
func Ed25519PublicKey(kid string, pub ed25519.PublicKey) Key {
	return Key{ID: kid, Alg: AlgEdDSA, Public: pub}
}

// ParseEd25519PublicKeyPEM reads an Ed25519 public key from a PKIX
// (SubjectPublicKeyInfo) PEM block ("PUBLIC KEY"), as
// `openssl pkey -in key.pem -pubout` writes it. It refuses a file that
// holds a private key anywhere in it: whoever configured a public key
// meant the gateway not to have the private one.
func ParseEd25519PublicKeyPEM(pemBytes []byte) (ed25519.PublicKey, error) {
	var pub ed25519.PublicKey
	rest := pemBytes
	for n := 0; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if n == 0 {
				if bytes.HasPrefix(bytes.TrimSpace(pemBytes), []byte("ssh-ed25519 ")) {
					return nil, errors.New("OpenSSH public keys are not supported; convert it (`ssh-keygen -e -m PKCS8 -f key.pub`) or use `openssl pkey -in key.pem -pubout`")
				}
				return nil, errors.New("no PEM block found (want a \"PUBLIC KEY\" block, e.g. from `openssl pkey -in key.pem -pubout`)")
			}
			break
		}
		switch block.Type {
		case "PUBLIC KEY":
		case "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			return nil, fmt.Errorf("PEM block is a %q, but a public key was expected: keep the private key with the app and give the gateway only its public half (`openssl pkey -in key.pem -pubout`), or configure it as a signing key", block.Type)
		case "CERTIFICATE":
			return nil, errors.New("PEM block is a certificate; want the bare public key (\"PUBLIC KEY\", `openssl x509 -in cert.pem -pubkey -noout`)")
		default:
			return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\" (PKIX, `openssl pkey -in key.pem -pubout`)", block.Type)
		}
		if pub != nil {
			return nil, errors.New("more than one public key in the file; give one key per file")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PKIX public key: %w", err)
		}
		p, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, not Ed25519", k)
		}
		pub = p
	}
	return pub, nil
}

// ringKey is a checked Key with what signing and verifying need.
type ringKey struct {
	id, alg string
	method  jwt.SigningMethod
	sign    any    // []byte or ed25519.PrivateKey; nil: verify only
	verify  any    // []byte or ed25519.PublicKey
	use     string // UseSigns, UseVerifies or UsePrevious
}

// Uses of a key in a ring, as Keys reports them.
const (
	// UseSigns: the ring's first key, which signs the gateway's links (and
	// verifies).
	UseSigns = "signs"
	// UseVerifies: the first key of its kid, not the ring's first key: it
	// verifies links signed with it under its kid.
	UseVerifies = "verifies"
	// UsePrevious: a later key of a kid that has another key before it
	// (the key of a kid under a gateway secret that was rotated): it still
	// verifies links signed with it, and apps should move to the first.
	UsePrevious = "previous"
)

// KeyRing signs links with its first key and verifies them with any of its
// keys. It is safe for concurrent use.
type KeyRing struct {
	keys []*ringKey
	// byID: the keys of each kid, in ring order; all share one algorithm.
	byID  map[string][]*ringKey
	jwks  []byte
	first *ringKey
	seen  verifiedTokens
}

// NewKeyRing checks keys and makes a ring of them: at least one, kids
// non-empty, algorithms known and key material valid. The first key signs
// and must be able to (an EdDSA key needs its private half); every key
// verifies, so a rotated key is kept after the new one until the links it
// signed have expired.
//
// A kid may have several keys, of one algorithm: after the gateway secret
// is rotated, the HS256 key "default" derived from the new secret comes
// first and those derived from the previous secrets after it, so that
// links apps signed with an old one keep working while they move. A token
// of that kid verifies if any of them signed it, tried in order. A key
// given twice (same kid, same material) is kept once.
func NewKeyRing(ks ...Key) (*KeyRing, error) {
	if len(ks) == 0 {
		return nil, errors.New("link: a key ring needs at least one key")
	}
	kr := &KeyRing{byID: make(map[string][]*ringKey, len(ks))}
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
keys:
	for i, k := range ks {
		if k.ID == "" {
			return nil, fmt.Errorf("link: key %d has no kid", i+1)
		}
		rk := &ringKey{id: k.ID, alg: k.Alg}
		switch k.Alg {
		case AlgHS256:
			if len(k.Secret) < minHS256Secret {
				return nil, fmt.Errorf("link: key %q: HS256 secret of %d bytes is too short; use at least %d", k.ID, len(k.Secret), minHS256Secret)
			}
			s := bytes.Clone(k.Secret)
			rk.method, rk.sign, rk.verify = jwt.SigningMethodHS256, s, s
		case AlgEdDSA:
			pub := k.Public
			if k.Private != nil {
				if len(k.Private) != ed25519.PrivateKeySize {
					return nil, fmt.Errorf("link: key %q: Ed25519 private key has %d bytes, want %d", k.ID, len(k.Private), ed25519.PrivateKeySize)
				}
				priv := ed25519.PrivateKey(bytes.Clone(k.Private))
				derived := priv.Public().(ed25519.PublicKey)
				if pub != nil && !pub.Equal(derived) {
					return nil, fmt.Errorf("link: key %q: public key does not match the private key", k.ID)
				}
				pub, rk.sign = derived, priv
			}
			if len(pub) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("link: key %q: Ed25519 key needs a private key or a %d-byte public key", k.ID, ed25519.PublicKeySize)
			}
			rk.method, rk.verify = jwt.SigningMethodEdDSA, ed25519.PublicKey(bytes.Clone(pub))
		case "":
			return nil, fmt.Errorf("link: key %q has no algorithm (want %s or %s)", k.ID, AlgHS256, AlgEdDSA)
		default:
			return nil, fmt.Errorf("link: key %q: unknown algorithm %q (want %s or %s)", k.ID, k.Alg, AlgHS256, AlgEdDSA)
		}
		if i == 0 && rk.sign == nil {
			return nil, fmt.Errorf("link: key %q is first, so it signs, but it is verify-only: it has no private key (put a key that can sign first)", k.ID)
		}
		same := kr.byID[k.ID]
		for _, o := range same {
			// One algorithm per kid: the header's alg is checked against the
			// kid's before any key is tried.
			if o.alg != rk.alg {
				return nil, fmt.Errorf("link: kid %q has an %s key and an %s key; a kid names keys of one algorithm", k.ID, o.alg, rk.alg)
			}
			if o.sameMaterial(rk) {
				continue keys
			}
		}
		switch {
		case i == 0:
			rk.use = UseSigns
		case len(same) > 0:
			rk.use = UsePrevious
		default:
			rk.use = UseVerifies
		}
		if pub, ok := rk.verify.(ed25519.PublicKey); ok {
			set.Keys = append(set.Keys, jwk{
				Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub),
				Kid: k.ID, Alg: AlgEdDSA, Use: "sig",
			})
		}
		kr.keys = append(kr.keys, rk)
		kr.byID[k.ID] = append(same, rk)
	}
	kr.first = kr.keys[0]
	js, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("link: encoding JWKS: %w", err)
	}
	kr.jwks = js
	return kr, nil
}

// sameMaterial reports whether k and o verify with the same key bytes.
func (k *ringKey) sameMaterial(o *ringKey) bool {
	switch kv := k.verify.(type) {
	case []byte:
		ov, ok := o.verify.([]byte)
		return ok && subtle.ConstantTimeCompare(kv, ov) == 1
	case ed25519.PublicKey:
		ov, ok := o.verify.(ed25519.PublicKey)
		return ok && kv.Equal(ov)
	}
	return false
}

// KeyInfo describes one key of a ring, for `caddy latchkey links keys`:
// what an app needs to sign links the ring verifies.
type KeyInfo struct {
	ID  string // kid
	Alg string // AlgHS256 or AlgEdDSA
	// Use is UseSigns, UseVerifies or UsePrevious.
	Use string
	// Secret is an HS256 key (a copy): whoever has it can sign links.
	Secret []byte
	// Public is an EdDSA key's public half.
	Public ed25519.PublicKey
	// CanSign: the ring holds the private half of an EdDSA key (always true
	// for HS256).
	CanSign bool
}

// Keys lists the ring's keys in ring order: the signing key first, then
// each kid's keys in the order they are tried.
func (kr *KeyRing) Keys() []KeyInfo {
	out := make([]KeyInfo, 0, len(kr.keys))
	for _, k := range kr.keys {
		ki := KeyInfo{ID: k.id, Alg: k.alg, Use: k.use, CanSign: k.sign != nil}
		switch v := k.verify.(type) {
		case []byte:
			ki.Secret = bytes.Clone(v)
		case ed25519.PublicKey:
			ki.Public = ed25519.PublicKey(bytes.Clone(v))
		}
		out = append(out, ki)
	}
	return out
}

// SigningKID is the kid of the key that signs.
func (kr *KeyRing) SigningKID() string { return kr.first.id }

// JWKS is the ring's public keys as a JSON Web Key Set: the EdDSA keys only
// (HS256 keys are secrets), so {"keys":[]} for a ring of HS256 keys.
func (kr *KeyRing) JWKS() []byte { return bytes.Clone(kr.jwks) }

// Sign signs c with the ring's first key, its kid in the header. c needs
// exp, jti, a user id or address as sub, a target (as TargetOf makes it)
// and a mode: the gateway's own links are complete, and recorded by jti.
// When iat is missing the token gets the current time (c is not changed).
func (kr *KeyRing) Sign(c *Claims) (string, error) {
	if c == nil {
		return "", errors.New("link: no claims to sign")
	}
	if c.IssuedAt == nil {
		cc := *c
		cc.IssuedAt = jwt.NewNumericDate(time.Now())
		c = &cc
	}
	if c.ID == "" {
		return "", errors.New("link: cannot sign: jti is required")
	}
	if err := c.check(); err != nil {
		return "", fmt.Errorf("link: cannot sign: %w", err)
	}
	if c.NotBefore != nil && !c.NotBefore.Before(c.ExpiresAt.Time) {
		return "", errors.New("link: cannot sign: nbf is not before exp, so the link would never work")
	}
	k := kr.first
	t := jwt.NewWithClaims(k.method, c)
	t.Header["kid"] = k.id
	s, err := t.SignedString(k.sign)
	if err != nil {
		return "", fmt.Errorf("link: signing: %w", err)
	}
	if len(s) > MaxTokenSize {
		return "", fmt.Errorf("link: token of %d bytes is over the %d-byte limit (too much data?)", len(s), MaxTokenSize)
	}
	return s, nil
}

// Error is why Verify refused a token. Its message never contains the token
// or any part of it; errors.Is finds the jwt sentinel errors
// (jwt.ErrTokenExpired, …) through it.
type Error struct {
	Reason string // one of the Reason constants
	msg    string
	err    error
}

func (e *Error) Error() string { return "link refused (" + e.Reason + "): " + e.msg }
func (e *Error) Unwrap() error { return e.err }

func refuse(reason, msg string, err error) (*Claims, string, error) {
	return nil, reason, &Error{Reason: reason, msg: msg, err: err}
}

// Verify checks a token and returns its claims, or the refusal reason and an
// *Error (reason is "" exactly when err is nil).
//
// The token's kid picks the keys and only their algorithm is accepted; the
// signature is checked before anything in the payload is read. Then the
// claims must be a link's (decodeClaims), or the token is
// ReasonMalformed. Times are checked against now with no leeway: a token is
// valid from nbf (inclusive) to exp (exclusive), in whole seconds. Verify
// does not check the target (Bind does), the user (the gate does) nor uses
// and revocation (the store does).
//
// A token without jti gets DigestID(token) as its ID, so that every link
// has one id to be counted, audited and revoked by.
//
// The claims returned may be shared with other calls: do not modify them.
// A token of a request-mode link with unlimited uses that verified is
// remembered (see verifiedTokens), so the same link used again costs a map
// look-up and the time checks, not a signature and a JSON decoding.
func (kr *KeyRing) Verify(token string, now time.Time) (*Claims, string, error) {
	if c := kr.seen.get(token); c != nil {
		return checkTimes(c, now)
	}
	if len(token) > MaxTokenSize {
		return refuse(ReasonBadSignature, fmt.Sprintf("token is over %d bytes", MaxTokenSize), jwt.ErrTokenMalformed)
	}
	h, rest, ok1 := strings.Cut(token, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return refuse(ReasonBadSignature, "token is not three dot-separated parts", jwt.ErrTokenMalformed)
	}
	header, ks, msg := kr.keyOf(h)
	if ks == nil {
		return refuse(ReasonBadSignature, msg, jwt.ErrTokenUnverifiable)
	}
	// Strict: one spelling per signature, so that the same link cannot be
	// presented as two tokens (two digests, two counts).
	sb, err := strictB64.DecodeString(sig)
	if err != nil {
		return refuse(ReasonBadSignature, "signature is not base64url without padding", jwt.ErrTokenMalformed)
	}
	if !verifyAny(ks, token[:len(h)+1+len(p)], sb) {
		return refuse(ReasonBadSignature, "signature is invalid", jwt.ErrTokenSignatureInvalid)
	}

	// A key of ours signed it: from here on, what is wrong is the signer's
	// claims, not a forgery.
	if typ, ok := header["typ"]; ok {
		var s string
		if json.Unmarshal(typ, &s) != nil || !strings.EqualFold(s, "JWT") {
			return refuse(ReasonMalformed, `header typ must be "JWT" when present`, jwt.ErrTokenMalformed)
		}
	}
	pb, err := strictB64.DecodeString(p)
	if err != nil {
		return refuse(ReasonMalformed, "payload is not base64url without padding", jwt.ErrTokenMalformed)
	}
	c, err := decodeClaims(pb)
	if err != nil {
		return refuse(ReasonMalformed, err.Error(), err)
	}
	if c.ID == "" {
		c.ID = DigestID(token)
	}
	if _, reason, err := checkTimes(c, now); err != nil {
		return nil, reason, err
	}
	if c.MaxUses == 0 && c.Mode == ModeRequest {
		// Only a link with unlimited uses is worth remembering: the others
		// are refused by the store after a few uses anyway.
		kr.seen.put(token, c)
	}
	return c, "", nil
}

var strictB64 = base64.RawURLEncoding.Strict()

// verifyAny reports whether one of ks (all of one algorithm) signed
// signed; they are tried in order, HMACs compared in constant time.
func verifyAny(ks []*ringKey, signed string, sig []byte) bool {
	for _, k := range ks {
		if k.method.Verify(signed, sig, k.verify) == nil {
			return true
		}
	}
	return false
}

// checkTimes is what the parser's validation does with the clock, for a
// token whose signature and claims were checked before: exp exclusive, nbf
// inclusive, no leeway, expiry reported first.
func checkTimes(c *Claims, now time.Time) (*Claims, string, error) {
	if !now.Before(c.ExpiresAt.Time) {
		return refuse(ReasonExpired, "link has expired", jwt.ErrTokenExpired)
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Time) {
		return refuse(ReasonNotYetValid, "link is not valid yet", jwt.ErrTokenNotValidYet)
	}
	return c, "", nil
}

// verifiedTokens remembers tokens that verified, with their claims, so that
// a link used many times (an unsubscribe link, a dashboard link) is
// verified once. Its key is the whole token: the same bytes can only
// verify the same way again, but for the clock, which checkTimes applies
// on every use. It is bounded in entries and in token length, and a new
// ring (a config reload, a key rotation) starts empty. Only tokens that
// verified are kept, so a forger cannot fill it.
type verifiedTokens struct {
	mu sync.RWMutex
	m  map[string]*Claims
}

const (
	maxVerifiedTokens  = 4096
	maxRememberedToken = 2048 // bytes
)

func (v *verifiedTokens) get(token string) *Claims {
	v.mu.RLock()
	c := v.m[token]
	v.mu.RUnlock()
	return c
}

func (v *verifiedTokens) put(token string, c *Claims) {
	if len(token) > maxRememberedToken {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]*Claims)
	}
	if len(v.m) >= maxVerifiedTokens {
		// Map order is random: a random eighth goes.
		n := 0
		for k := range v.m {
			delete(v.m, k)
			if n++; n >= maxVerifiedTokens/8 {
				break
			}
		}
	}
	v.m[token] = c
}

// keyOf finds the keys of the kid named by the token's header (its first
// part, base64url), without trusting anything else in it. It returns the
// header, or nil and why when there are no keys for it.
func (kr *KeyRing) keyOf(h string) (map[string]json.RawMessage, []*ringKey, string) {
	hb, err := strictB64.DecodeString(h)
	if err != nil {
		return nil, nil, "token header is not base64url without padding"
	}
	// A map, not a struct: encoding/json matches struct fields without
	// regard to case, and "ALG" or "KID" must not stand for "alg" or "kid".
	var header map[string]json.RawMessage
	if err := json.Unmarshal(hb, &header); err != nil || header == nil {
		return nil, nil, "token header is not a JSON object"
	}
	if _, ok := header["crit"]; ok {
		return nil, nil, "token has critical header extensions"
	}
	var alg, kid string
	if json.Unmarshal(header["kid"], &kid) != nil || header["kid"] == nil {
		return nil, nil, "token has no key id (kid)"
	}
	if json.Unmarshal(header["alg"], &alg) != nil {
		return nil, nil, "token has no algorithm (alg)"
	}
	ks := kr.byID[kid]
	if ks == nil {
		return nil, nil, "token's key id is not in the key ring"
	}
	if alg != ks[0].alg {
		return nil, nil, "token's algorithm is not its key's"
	}
	return header, ks, ""
}
