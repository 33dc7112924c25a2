package link

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef")
	t0         = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	edPriv     = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	edPriv2    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
)

func mustRing(t testing.TB, ks ...Key) *KeyRing {
	t.Helper()
	kr, err := NewKeyRing(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func hsRing(t testing.TB) *KeyRing { return mustRing(t, HS256Key(testSecret, "default")) }
func edRing(t testing.TB) *KeyRing { return mustRing(t, Ed25519Key("ed1", edPriv)) }

// baseClaims are complete claims valid from t0-1m to t0+1h.
func baseClaims() *Claims {
	c := &Claims{
		Target:  "app.example.com/unsubscribe",
		MaxUses: 1,
		Mode:    ModeRequest,
	}
	c.Subject = "42"
	c.ID = "jti-1"
	c.IssuedAt = jwt.NewNumericDate(t0.Add(-time.Minute))
	c.ExpiresAt = jwt.NewNumericDate(t0.Add(time.Hour))
	return c
}

func mustSign(t testing.TB, kr *KeyRing, c *Claims) string {
	t.Helper()
	s, err := kr.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// forge builds a token by hand: header and payload as given, signed by
// sign (nil: empty signature).
func forge(t testing.TB, header any, payload any, sign func(input string) []byte) string {
	t.Helper()
	var hb []byte
	var err error
	if raw, ok := header.(string); ok {
		hb = []byte(raw)
	} else if hb, err = json.Marshal(header); err != nil {
		t.Fatal(err)
	}
	var pb []byte
	if raw, ok := payload.(string); ok {
		pb = []byte(raw)
	} else if pb, err = json.Marshal(payload); err != nil {
		t.Fatal(err)
	}
	input := b64(hb) + "." + b64(pb)
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + b64(sig)
}

func hs(key []byte) func(string) []byte {
	return func(in string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return m.Sum(nil)
	}
}

func ed(priv ed25519.PrivateKey) func(string) []byte {
	return func(in string) []byte { return ed25519.Sign(priv, []byte(in)) }
}

// claimsMap is baseClaims as a map, to be edited and forged.
func claimsMap() map[string]any {
	return map[string]any{
		"sub": "42", "jti": "jti-1", "tgt": "app.example.com/unsubscribe", "max": 1, "mode": "request",
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	rings := []struct {
		name, kid, alg string
		ring           *KeyRing
	}{
		{"HS256", "default", AlgHS256, hsRing(t)},
		{"EdDSA", "ed1", AlgEdDSA, edRing(t)},
	}
	for _, r := range rings {
		t.Run(r.name, func(t *testing.T) {
			c := baseClaims()
			c.Query = "a=1&b=2"
			c.Methods = []string{"GET", "POST"}
			c.MaxUses = 3
			c.Mode = ModeLogin
			c.NotBefore = jwt.NewNumericDate(t0.Add(-time.Second))
			c.Data = map[string]any{"list": "news", "n": 3, "big": int64(1) << 62}
			tok := mustSign(t, r.ring, c)

			hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
			var h map[string]any
			if err := json.Unmarshal(hb, &h); err != nil || h["kid"] != r.kid || h["alg"] != r.alg {
				t.Fatalf("header %s, want kid %q alg %q", hb, r.kid, r.alg)
			}
			if got := r.ring.SigningKID(); got != r.kid {
				t.Errorf("SigningKID = %q", got)
			}

			got, reason, err := r.ring.Verify(tok, t0)
			if err != nil || reason != "" {
				t.Fatalf("Verify: %q, %v", reason, err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(c)
			if !bytes.Equal(gj, wj) {
				t.Errorf("claims\n got %s\nwant %s", gj, wj)
			}
			if !got.ExpiresAt.Equal(c.ExpiresAt.Time) || !got.NotBefore.Equal(c.NotBefore.Time) || !got.IssuedAt.Equal(c.IssuedAt.Time) {
				t.Errorf("times %v %v %v", got.ExpiresAt, got.NotBefore, got.IssuedAt)
			}
			wantData := map[string]any{"list": "news", "n": json.Number("3"), "big": json.Number("4611686018427387904")}
			if !reflect.DeepEqual(got.Data, wantData) {
				t.Errorf("data %#v, want %#v", got.Data, wantData)
			}
			if id, err := got.UserID(); err != nil || id != 42 {
				t.Errorf("UserID = %d, %v", id, err)
			}
		})
	}
}

func TestSignFillsIssuedAt(t *testing.T) {
	kr := hsRing(t)
	c := baseClaims()
	c.IssuedAt = nil
	tok := mustSign(t, kr, c)
	if c.IssuedAt != nil {
		t.Error("Sign changed the caller's claims")
	}
	got, _, err := kr.Verify(tok, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.IssuedAt == nil || time.Since(got.IssuedAt.Time) > time.Minute {
		t.Errorf("iat = %v, want about now", got.IssuedAt)
	}
}

func TestVerifyRefusals(t *testing.T) {
	kr := mustRing(t, HS256Key(testSecret, "default"), Key{ID: "ed1", Alg: AlgEdDSA, Public: edPriv.Public().(ed25519.PublicKey)})
	good := mustSign(t, kr, baseClaims())
	edGood := mustSign(t, edRing(t), baseClaims())
	hsKey := HS256Key(testSecret, "default").Secret
	pub := edPriv.Public().(ed25519.PublicKey)
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "default"}
	parts := strings.Split(good, ".")

	tamper := func(edit func(map[string]any)) string {
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		json.Unmarshal(pb, &m)
		edit(m)
		nb, _ := json.Marshal(m)
		return parts[0] + "." + b64(nb) + "." + parts[2]
	}
	withClaims := func(edit func(map[string]any)) string {
		m := claimsMap()
		edit(m)
		return forge(t, hsHeader, m, hs(hsKey))
	}
	lastFlip := func(s string) string {
		// same 6 bits' high part, different low (padding) bits: a second
		// spelling of the same signature under lax decoding.
		last := s[len(s)-1]
		i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
		return s[:len(s)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i^1])
	}

	tests := []struct {
		name   string
		token  string
		now    time.Time
		reason string
		is     error
	}{
		{"empty", "", t0, ReasonBadSignature, jwt.ErrTokenMalformed},
		{"garbage", "not a token", t0, ReasonBadSignature, nil},
		{"two segments", parts[0] + "." + parts[1], t0, ReasonBadSignature, jwt.ErrTokenMalformed},
		{"four segments", good + ".x", t0, ReasonBadSignature, jwt.ErrTokenMalformed},
		{"oversized", good + strings.Repeat("A", MaxTokenSize), t0, ReasonBadSignature, jwt.ErrTokenMalformed},
		{"expired", good, t0.Add(time.Hour), ReasonExpired, jwt.ErrTokenExpired},
		{"not yet valid", withClaims(func(m map[string]any) { m["nbf"] = t0.Add(time.Second).Unix() }), t0, ReasonNotYetValid, jwt.ErrTokenNotValidYet},
		{"tampered sub", tamper(func(m map[string]any) { m["sub"] = "1" }), t0, ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
		{"tampered exp", tamper(func(m map[string]any) { m["exp"] = t0.Add(1000 * time.Hour).Unix() }), t0.Add(2 * time.Hour), ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64(bytes.Repeat([]byte{1}, 32)), t0, ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
		{"signature spelled another way", lastFlip(good), t0, ReasonBadSignature, jwt.ErrTokenMalformed},
		{"EdDSA signature spelled another way", lastFlip(edGood), t0, ReasonBadSignature, jwt.ErrTokenMalformed},
		{"padded signature", good + "=", t0, ReasonBadSignature, jwt.ErrTokenMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", t0, ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
		{"alg none", forge(t, map[string]any{"alg": "none", "typ": "JWT", "kid": "default"}, claimsMap(), nil), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"alg none without kid", forge(t, map[string]any{"alg": "none"}, claimsMap(), nil), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"alg NONE", forge(t, map[string]any{"alg": "NONE", "kid": "default"}, claimsMap(), nil), t0, ReasonBadSignature, nil},
		{"HS256 with the Ed25519 public key as secret", forge(t, map[string]any{"alg": "HS256", "kid": "ed1"}, claimsMap(), hs(pub)), t0, ReasonBadSignature, nil},
		{"HS256 with the Ed25519 public key PEM as secret", forge(t, map[string]any{"alg": "HS256", "kid": "ed1"}, claimsMap(), hs(pubPEM)), t0, ReasonBadSignature, nil},
		{"HS256 with the Ed25519 x as secret", forge(t, map[string]any{"alg": "HS256", "kid": "ed1"}, claimsMap(), hs([]byte(b64(pub)))), t0, ReasonBadSignature, nil},
		{"EdDSA header on the HS256 key", forge(t, map[string]any{"alg": "EdDSA", "kid": "default"}, claimsMap(), ed(edPriv)), t0, ReasonBadSignature, nil},
		{"EdDSA signed by another key", forge(t, map[string]any{"alg": "EdDSA", "kid": "ed1"}, claimsMap(), ed(edPriv2)), t0, ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
		{"HS384", forge(t, map[string]any{"alg": "HS384", "kid": "default"}, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, nil},
		{"unknown kid", forge(t, map[string]any{"alg": "HS256", "kid": "other"}, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"no kid", forge(t, map[string]any{"alg": "HS256"}, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"alg none behind an upper-case ALG", forge(t, `{"alg":"none","ALG":"HS256","kid":"default"}`, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"kid behind an upper-case KID", forge(t, `{"alg":"HS256","kid":"nope","KID":"default"}`, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"padded header", strings.Replace(forge(t, `{"alg":"HS256","kid":"default"}`, claimsMap(), hs(hsKey)), ".", "=.", 1), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"header an array", forge(t, `["HS256"]`, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"a signed payload with bad claims, tampered", tamper(func(m map[string]any) { m["exp"] = "tomorrow" }), t0, ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
		{"header not JSON", forge(t, `{"alg":`, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"KID in upper case", forge(t, map[string]any{"alg": "HS256", "KID": "default"}, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"numeric kid", forge(t, map[string]any{"alg": "HS256", "kid": 1}, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"crit header", forge(t, map[string]any{"alg": "HS256", "kid": "default", "crit": []string{"exp"}}, claimsMap(), hs(hsKey)), t0, ReasonBadSignature, jwt.ErrTokenUnverifiable},
		{"signed with another secret", forge(t, hsHeader, claimsMap(), hs(HS256Key([]byte("another secret another secret 32"), "default").Secret)), t0, ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
		{"signed with the raw gateway secret", forge(t, hsHeader, claimsMap(), hs(testSecret)), t0, ReasonBadSignature, jwt.ErrTokenSignatureInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reason, err := kr.Verify(tt.token, tt.now)
			if c != nil || err == nil {
				t.Fatalf("Verify accepted: %+v", c)
			}
			if reason != tt.reason {
				t.Errorf("reason %q, want %q (%v)", reason, tt.reason, err)
			}
			var le *Error
			if !errors.As(err, &le) || le.Reason != reason {
				t.Errorf("error %v is not an *Error with reason %q", err, reason)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			msg := err.Error()
			for _, p := range strings.Split(tt.token, ".") {
				if len(p) >= 8 && strings.Contains(msg, p) {
					t.Errorf("error %q contains part of the token", msg)
				}
			}
		})
	}
}

func TestVerifyClockEdges(t *testing.T) {
	kr := hsRing(t)
	c := baseClaims()
	nbf, exp := t0.Add(-10*time.Second), t0.Add(10*time.Second)
	c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(nbf), jwt.NewNumericDate(exp)
	tok := mustSign(t, kr, c)
	tests := []struct {
		name   string
		now    time.Time
		reason string
	}{
		{"a second before nbf", nbf.Add(-time.Second), ReasonNotYetValid},
		{"a nanosecond before nbf", nbf.Add(-time.Nanosecond), ReasonNotYetValid},
		{"at nbf", nbf, ""},
		{"a second after nbf", nbf.Add(time.Second), ""},
		{"a second before exp", exp.Add(-time.Second), ""},
		{"a nanosecond before exp", exp.Add(-time.Nanosecond), ""},
		{"at exp", exp, ReasonExpired},
		{"a second after exp", exp.Add(time.Second), ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reason, err := kr.Verify(tok, tt.now)
			if reason != tt.reason || (err == nil) != (tt.reason == "") {
				t.Errorf("Verify at %v: %q, %v; want %q", tt.now, reason, err, tt.reason)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldHS, newHS := HS256Key(testSecret, "2029"), HS256Key(testSecret, "2030")
	oldEd, newEd := Ed25519Key("ed-old", edPriv), Ed25519Key("ed-new", edPriv2)
	edVerifier := Key{ID: "ed-old", Alg: AlgEdDSA, Public: edPriv.Public().(ed25519.PublicKey)}
	tests := []struct {
		name          string
		signer        *KeyRing
		verifier      *KeyRing
		wantSignerKID string
		reason        string
	}{
		{"HS256 old key rotated out", mustRing(t, oldHS), mustRing(t, newHS), "2029", ReasonBadSignature},
		{"HS256 old key kept as verifier", mustRing(t, oldHS), mustRing(t, newHS, oldHS), "2029", ""},
		{"HS256 new key signs", mustRing(t, newHS, oldHS), mustRing(t, newHS), "2030", ""},
		{"HS256 new token, old ring", mustRing(t, newHS, oldHS), mustRing(t, oldHS), "2030", ReasonBadSignature},
		{"EdDSA old key rotated out", mustRing(t, oldEd), mustRing(t, newEd), "ed-old", ReasonBadSignature},
		{"EdDSA old key kept as verifier (public half only)", mustRing(t, oldEd), mustRing(t, newEd, edVerifier), "ed-old", ""},
		{"HS256 to EdDSA", mustRing(t, oldHS), mustRing(t, newEd, oldHS), "2029", ""},
		{"EdDSA to HS256, EdDSA dropped", mustRing(t, oldEd), mustRing(t, newHS), "ed-old", ReasonBadSignature},
		{"same kid, other secret", mustRing(t, HS256Key([]byte("an older gateway secret, 32 bytes"), "default")), hsRing(t), "default", ReasonBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.signer.SigningKID(); got != tt.wantSignerKID {
				t.Fatalf("signing kid %q, want %q", got, tt.wantSignerKID)
			}
			tok := mustSign(t, tt.signer, baseClaims())
			c, reason, err := tt.verifier.Verify(tok, t0)
			if reason != tt.reason || (err == nil) != (tt.reason == "") || (c == nil) == (tt.reason == "") {
				t.Errorf("Verify: %q, %v; want %q", reason, err, tt.reason)
			}
		})
	}
}

func TestNewKeyRing(t *testing.T) {
	pub := edPriv.Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		keys []Key
		err  string // "" = ok
	}{
		{"one HS256", []Key{HS256Key(testSecret, "default")}, ""},
		{"one EdDSA", []Key{Ed25519Key("e", edPriv)}, ""},
		{"EdDSA verify-only after a signer", []Key{HS256Key(testSecret, "a"), {ID: "e", Alg: AlgEdDSA, Public: pub}}, ""},
		{"EdDSA with matching public", []Key{{ID: "e", Alg: AlgEdDSA, Private: edPriv, Public: pub}}, ""},
		{"no keys", nil, "at least one key"},
		{"empty kid", []Key{HS256Key(testSecret, "")}, "no kid"},
		{"one kid, two algorithms", []Key{HS256Key(testSecret, "a"), Ed25519Key("a", edPriv)}, "one algorithm"},
		{"no alg", []Key{{ID: "a", Secret: testSecret}}, "no algorithm"},
		{"unknown alg", []Key{{ID: "a", Alg: "RS256", Secret: testSecret}}, "unknown algorithm"},
		{"alg none", []Key{{ID: "a", Alg: "none", Secret: testSecret}}, "unknown algorithm"},
		{"short HS256 secret", []Key{{ID: "a", Alg: AlgHS256, Secret: []byte("short")}}, "too short"},
		{"Ed25519 private key of the wrong size", []Key{Ed25519Key("e", edPriv[:10])}, "bytes"},
		{"Ed25519 without any key", []Key{HS256Key(testSecret, "a"), {ID: "e", Alg: AlgEdDSA}}, "needs a private key"},
		{"verify-only key first", []Key{{ID: "e", Alg: AlgEdDSA, Public: pub}}, "no private key"},
		{"public key mismatch", []Key{{ID: "e", Alg: AlgEdDSA, Private: edPriv, Public: edPriv2.Public().(ed25519.PublicKey)}}, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := NewKeyRing(tt.keys...)
			if tt.err == "" {
				if err != nil || kr == nil {
					t.Fatalf("NewKeyRing: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("NewKeyRing error %v, want one with %q", err, tt.err)
			}
		})
	}
}

func TestKeyRingCopiesKeys(t *testing.T) {
	secret := bytes.Clone(HS256Key(testSecret, "default").Secret)
	kr := mustRing(t, Key{ID: "default", Alg: AlgHS256, Secret: secret})
	tok := mustSign(t, kr, baseClaims())
	clear(secret)
	if _, _, err := kr.Verify(tok, t0); err != nil {
		t.Fatalf("ring depends on the caller's slice: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Claims)
		err  string
	}{
		{"no exp", func(c *Claims) { c.ExpiresAt = nil }, "exp"},
		{"no jti", func(c *Claims) { c.ID = "" }, "jti"},
		{"no sub", func(c *Claims) { c.Subject = "" }, "sub"},
		{"sub not decimal", func(c *Claims) { c.Subject = "0x2a" }, "sub"},
		{"sub zero", func(c *Claims) { c.Subject = "0" }, "sub"},
		{"sub leading zero", func(c *Claims) { c.Subject = "042" }, "sub"},
		{"no target", func(c *Claims) { c.Target = "" }, "target"},
		{"target with scheme", func(c *Claims) { c.Target = "https://app.example.com/x" }, "scheme"},
		{"target without path", func(c *Claims) { c.Target = "app.example.com" }, "host and path"},
		{"target without host", func(c *Claims) { c.Target = "/x" }, "host and path"},
		{"target host upper-case", func(c *Claims) { c.Target = "App.example.com/x" }, "lower-case"},
		{"target default port", func(c *Claims) { c.Target = "app.example.com:443/x" }, "default port"},
		{"no mode", func(c *Claims) { c.Mode = "" }, "mode"},
		{"lower-case method", func(c *Claims) { c.Methods = []string{"get"} }, "method"},
		{"empty method", func(c *Claims) { c.Methods = []string{""} }, "method"},
		{"nbf at exp", func(c *Claims) { c.NotBefore = c.ExpiresAt }, "nbf"},
		{"data not JSON", func(c *Claims) { c.Data = map[string]any{"f": func() {}} }, "signing"},
		{"too much data", func(c *Claims) { c.Data = map[string]any{"x": strings.Repeat("x", MaxTokenSize)} }, "limit"},
	}
	kr := hsRing(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseClaims()
			tt.edit(c)
			tok, err := kr.Sign(c)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Sign = %q, %v; want an error with %q", tok, err, tt.err)
			}
		})
	}
	if _, err := kr.Sign(nil); err == nil {
		t.Error("Sign(nil) succeeded")
	}
}

func TestTargetPortKept(t *testing.T) {
	kr := hsRing(t)
	c := baseClaims()
	c.Target = "[::1]:8080/x"
	if _, err := kr.Sign(c); err != nil {
		t.Fatal(err)
	}
}

func TestJWKS(t *testing.T) {
	pub2 := edPriv2.Public().(ed25519.PublicKey)
	kr := mustRing(t, HS256Key(testSecret, "hs"), Ed25519Key("e1", edPriv), Key{ID: "e2", Alg: AlgEdDSA, Public: pub2}, HS256Key(testSecret, "hs2"))
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	js := kr.JWKS()
	if err := json.Unmarshal(js, &set); err != nil {
		t.Fatalf("JWKS %s: %v", js, err)
	}
	want := []map[string]string{
		{"kty": "OKP", "crv": "Ed25519", "x": b64(edPriv.Public().(ed25519.PublicKey)), "kid": "e1", "alg": "EdDSA", "use": "sig"},
		{"kty": "OKP", "crv": "Ed25519", "x": b64(pub2), "kid": "e2", "alg": "EdDSA", "use": "sig"},
	}
	if !reflect.DeepEqual(set.Keys, want) {
		t.Errorf("JWKS %s", js)
	}
	if bytes.Contains(js, []byte(b64(HS256Key(testSecret, "hs").Secret))) || bytes.Contains(js, []byte(`"hs"`)) || bytes.Contains(js, []byte(`"d":`)) {
		t.Errorf("JWKS shows an HS256 key or a private part: %s", js)
	}
	js[0] = 'X' // callers get a copy
	if kr.JWKS()[0] != '{' {
		t.Error("JWKS returns the ring's own slice")
	}
	if got := string(hsRing(t).JWKS()); got != `{"keys":[]}` {
		t.Errorf("HS256-only JWKS = %s", got)
	}
}

func TestParseEd25519PrivateKeyPEM(t *testing.T) {
	der, err := x509.MarshalPKCS8PrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	tests := []struct {
		name string
		in   []byte
		err  string
	}{
		{"PKCS#8", good, ""},
		{"PKCS#8 after text", append([]byte("my key\n"), good...), ""},
		{"empty", nil, "no PEM block"},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), "encrypted"},
		{"OpenSSH", pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("x")}), "OpenSSH"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), `"PUBLIC KEY"`},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")}), "PKCS#8"},
		{"ECDSA", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "not Ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseEd25519PrivateKeyPEM(tt.in)
			if tt.err == "" {
				if err != nil || !k.Equal(edPriv) {
					t.Fatalf("got %v, %v", k, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one with %q", err, tt.err)
			}
		})
	}
}

func TestNewJTI(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		j := NewJTI()
		b, err := base64.RawURLEncoding.Strict().DecodeString(j)
		if err != nil || len(b) != 16 || len(j) != 22 {
			t.Fatalf("NewJTI = %q (%v)", j, err)
		}
		if seen[j] {
			t.Fatalf("NewJTI repeated %q", j)
		}
		seen[j] = true
	}
}

func TestUserID(t *testing.T) {
	tests := []struct {
		sub  string
		want int64 // 0 = error
	}{
		{"42", 42}, {"1", 1}, {"9223372036854775807", 9223372036854775807},
		{"", 0}, {"0", 0}, {"-1", 0}, {"+1", 0}, {"01", 0}, {" 1", 0}, {"1.0", 0}, {"9223372036854775808", 0}, {"luke", 0},
	}
	for _, tt := range tests {
		c := &Claims{}
		c.Subject = tt.sub
		got, err := c.UserID()
		if got != tt.want || (err == nil) != (tt.want != 0) {
			t.Errorf("UserID(%q) = %d, %v; want %d", tt.sub, got, err, tt.want)
		}
	}
}

func TestTargetOf(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://app.example.com/unsubscribe", "app.example.com/unsubscribe"},
		{"https://App.Example.COM/Path/X", "app.example.com/Path/X"},
		{"https://app.example.com", "app.example.com/"},
		{"https://app.example.com:443/x", "app.example.com/x"},
		{"http://app.example.com:80/x", "app.example.com/x"},
		{"http://localhost:8080/x?y=1#z", "localhost:8080/x"},
		{"https://app.example.com./x", "app.example.com/x"},
		{"https://[::1]:8443/x", "[::1]:8443/x"},
		{"https://[::1]/x", "[::1]/x"},
		{"https://app.example.com/a%20b/%2F", "app.example.com/a b//"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := TargetOf(u); got != tt.want {
			t.Errorf("TargetOf(%s) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestTokenFromQuery(t *testing.T) {
	tests := []struct {
		name, raw, param string
		token, rest      string
		found            bool
	}{
		{"empty", "", "token", "", "", false},
		{"absent", "a=1&b=2", "token", "", "a=1&b=2", false},
		{"only", "token=abc", "token", "abc", "", true},
		{"first", "token=abc&a=1&b=2", "token", "abc", "a=1&b=2", true},
		{"middle", "a=1&token=abc&b=2", "token", "abc", "a=1&b=2", true},
		{"last", "a=1&b=2&token=abc", "token", "abc", "a=1&b=2", true},
		{"repeated: first value wins, all removed", "token=one&a=1&token=two&token=three", "token", "one", "a=1", true},
		{"others keep order and encoding", "z=%2F&b=a+b&token=t&a=%e2%82%ac&c", "token", "t", "z=%2F&b=a+b&a=%e2%82%ac&c", true},
		{"encoded name", "a=1&tok%65n=abc", "token", "abc", "a=1", true},
		{"encoded value", "token=a%2Eb%2Ec", "token", "a.b.c", "", true},
		{"bad escape in value kept raw", "token=a%zz", "token", "a%zz", "", true},
		{"empty value", "token=&a=1", "token", "", "a=1", true},
		{"no equals", "token&a=1", "token", "", "a=1", true},
		{"prefix of another name", "tokens=1&mytoken=2&token2=3", "token", "", "tokens=1&mytoken=2&token2=3", false},
		{"case matters", "Token=abc", "token", "", "Token=abc", false},
		{"semicolon is not a separator", "a=1;token=abc", "token", "", "a=1;token=abc", false},
		{"empty pieces kept", "a=1&&token=x&&b=2", "token", "x", "a=1&&&b=2", true},
		{"other param", "t=1&token=2", "t", "1", "token=2", true},
		{"JWT", "list=news&token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.sig-_0", "token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.sig-_0", "list=news", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, rest, found := TokenFromQuery(tt.raw, tt.param)
			if token != tt.token || rest != tt.rest || found != tt.found {
				t.Errorf("TokenFromQuery(%q, %q) = %q, %q, %v; want %q, %q, %v", tt.raw, tt.param, token, rest, found, tt.token, tt.rest, tt.found)
			}
		})
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"b=2&a=1", "a=1&b=2"},
		{"a=x%20y", "a=x+y"},
		{"a=2&a=1", "a=2&a=1"},
		{"a=1;b=2", "a=1;b=2"},
		{"a=%zz", "a=%zz"},
	}
	for _, tt := range tests {
		if got := CanonicalQuery(tt.in); got != tt.want {
			t.Errorf("CanonicalQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBind(t *testing.T) {
	claims := func(target, query string, methods ...string) *Claims {
		c := baseClaims()
		c.Target, c.Query, c.Methods = target, query, methods
		return c
	}
	unsub := claims("app.example.com/unsubscribe", "")
	docs := claims("app.example.com/docs/intro", "")
	ported := claims("localhost:8080/x", "")
	type req struct {
		host, path, query, method string
		oneClick                  bool
	}
	get := func(host, path string) req { return req{host, path, "", "GET", false} }
	prefixes := []string{"/docs/", "/files"}
	tests := []struct {
		name     string
		c        *Claims
		r        req
		prefixes []string
		want     bool
	}{
		{"exact", unsub, get("app.example.com", "/unsubscribe"), nil, true},
		{"host upper-case", unsub, get("APP.Example.com", "/unsubscribe"), nil, true},
		{"host trailing dot", unsub, get("app.example.com.", "/unsubscribe"), nil, true},
		{"host :443", unsub, get("app.example.com:443", "/unsubscribe"), nil, true},
		{"host :80", unsub, get("app.example.com:80", "/unsubscribe"), nil, true},
		{"host other port", unsub, get("app.example.com:8443", "/unsubscribe"), nil, false},
		{"other host", unsub, get("evil.example.com", "/unsubscribe"), nil, false},
		{"suffix host", unsub, get("app.example.com.evil.com", "/unsubscribe"), nil, false},
		{"target port exact", ported, get("localhost:8080", "/x"), nil, true},
		{"target port missing", ported, get("localhost", "/x"), nil, false},
		{"target port other", ported, get("localhost:8081", "/x"), nil, false},
		{"path case", unsub, get("app.example.com", "/Unsubscribe"), nil, false},
		{"path trailing slash", unsub, get("app.example.com", "/unsubscribe/"), nil, false},
		{"path below, no prefixes", unsub, get("app.example.com", "/unsubscribe/x"), nil, false},
		{"prefix: same path", docs, get("app.example.com", "/docs/intro"), prefixes, true},
		{"prefix: sibling", docs, get("app.example.com", "/docs/other/page"), prefixes, true},
		{"prefix: the prefix itself", docs, get("app.example.com", "/docs/"), prefixes, true},
		{"prefix: outside", docs, get("app.example.com", "/admin"), prefixes, false},
		{"prefix: dot-dot", docs, get("app.example.com", "/docs/../admin"), prefixes, false},
		{"prefix: dot", docs, get("app.example.com", "/docs/./x"), prefixes, false},
		{"prefix: encoded dot-dot", docs, get("app.example.com", "/docs/%2e%2e/admin"), prefixes, false},
		{"prefix: encoded slash", docs, get("app.example.com", "/docs/a%2Fb"), prefixes, false},
		{"prefix: backslash", docs, get("app.example.com", "/docs/..\\admin"), prefixes, false},
		{"prefix: target not under any", unsub, get("app.example.com", "/docs/intro"), prefixes, false},
		{"prefix: other host", docs, get("evil.example.com", "/docs/x"), prefixes, false},
		{"prefix without slash: below", claims("app.example.com/files/a", ""), get("app.example.com", "/files/b"), prefixes, true},
		{"prefix without slash: itself", claims("app.example.com/files/a", ""), get("app.example.com", "/files"), prefixes, true},
		{"prefix without slash: not a segment", claims("app.example.com/files/a", ""), get("app.example.com", "/filesystem"), prefixes, false},
		{"prefix without slash: target not a segment", claims("app.example.com/filesystem", ""), get("app.example.com", "/files/a"), prefixes, false},
		{"prefix: relative prefix ignored", docs, get("app.example.com", "/docs/x"), []string{"docs/"}, false},
		{"query unbound: any query", unsub, req{"app.example.com", "/unsubscribe", "x=1", "GET", false}, nil, true},
		{"query bound: same", claims("app.example.com/u", "a=1&b=2"), req{"app.example.com", "/u", "a=1&b=2", "GET", false}, nil, true},
		{"query bound: reordered", claims("app.example.com/u", "a=1&b=2"), req{"app.example.com", "/u", "b=2&a=1", "GET", false}, nil, true},
		{"query bound: other encoding of the same", claims("app.example.com/u", "a=x+y"), req{"app.example.com", "/u", "a=x%20y", "GET", false}, nil, true},
		{"query bound: other value", claims("app.example.com/u", "a=1&b=2"), req{"app.example.com", "/u", "a=1&b=3", "GET", false}, nil, false},
		{"query bound: extra param", claims("app.example.com/u", "a=1"), req{"app.example.com", "/u", "a=1&admin=1", "GET", false}, nil, false},
		{"query bound: missing", claims("app.example.com/u", "a=1"), req{"app.example.com", "/u", "", "GET", false}, nil, false},
		{"query bound: repeated order matters", claims("app.example.com/u", "a=1&a=2"), req{"app.example.com", "/u", "a=2&a=1", "GET", false}, nil, false},
		{"default methods: HEAD", unsub, req{"app.example.com", "/unsubscribe", "", "HEAD", false}, nil, true},
		{"default methods: POST", unsub, req{"app.example.com", "/unsubscribe", "", "POST", false}, nil, false},
		{"default methods: one-click POST", unsub, req{"app.example.com", "/unsubscribe", "", "POST", true}, nil, true},
		{"default methods: one-click flag on PUT", unsub, req{"app.example.com", "/unsubscribe", "", "PUT", true}, nil, false},
		{"default methods: DELETE", unsub, req{"app.example.com", "/unsubscribe", "", "DELETE", false}, nil, false},
		{"default methods: lower-case get", unsub, req{"app.example.com", "/unsubscribe", "", "get", false}, nil, false},
		{"explicit POST", claims("app.example.com/u", "", "POST"), req{"app.example.com", "/u", "", "POST", false}, nil, true},
		{"explicit POST: GET refused", claims("app.example.com/u", "", "POST"), req{"app.example.com", "/u", "", "GET", false}, nil, false},
		{"explicit GET: HEAD refused", claims("app.example.com/u", "", "GET"), req{"app.example.com", "/u", "", "HEAD", false}, nil, false},
		{"explicit GET: one-click POST", claims("app.example.com/u", "", "GET"), req{"app.example.com", "/u", "", "POST", true}, nil, true},
		{"explicit PUT", claims("app.example.com/u", "", "GET", "PUT"), req{"app.example.com", "/u", "", "PUT", false}, nil, true},
		{"nil claims", nil, get("app.example.com", "/unsubscribe"), nil, false},
		{"broken target", claims("nohost", ""), get("nohost", "/"), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.r
			if got := Bind(tt.c, r.host, r.path, r.query, r.method, r.oneClick, tt.prefixes); got != tt.want {
				t.Errorf("Bind = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzVerify: no input panics, and only the very tokens the ring signed
// verify.
func FuzzVerify(f *testing.F) {
	hsKey, edKey := HS256Key(testSecret, "default"), Ed25519Key("ed1", edPriv)
	ring := mustRing(f, hsKey, edKey)
	real := map[string]bool{
		mustSign(f, ring, baseClaims()):               true,
		mustSign(f, mustRing(f, edKey), baseClaims()): true,
		// An app's token with only the required claims.
		forge(f, map[string]any{"alg": "HS256", "kid": "default"}, minimalClaims(), hs(hsKey.Secret)): true,
	}
	// Signed by the ring's keys, but not a link's claims.
	malformed := map[string]bool{
		forge(f, map[string]any{"alg": "HS256", "kid": "default"}, `{"sub":"42","exp":"soon"}`, hs(hsKey.Secret)): true,
		forge(f, map[string]any{"alg": "EdDSA", "kid": "ed1"}, `{"sub":42}`, ed(edPriv)):                          true,
	}
	for tok := range malformed {
		f.Add(tok)
	}
	for tok := range real {
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "=")
		f.Add(tok[:len(tok)-1] + "B")
		f.Add(strings.ToUpper(tok))
	}
	f.Add("")
	f.Add("..")
	f.Add("e30.e30.")
	f.Add(forge(f, map[string]any{"alg": "none", "kid": "default"}, claimsMap(), nil))
	f.Add(forge(f, map[string]any{"alg": "HS256", "kid": "ed1"}, claimsMap(), hs(edPriv.Public().(ed25519.PublicKey))))
	f.Fuzz(func(t *testing.T, tok string) {
		c, reason, err := ring.Verify(tok, t0)
		if (err == nil) != (reason == "") || (err == nil) != (c != nil) {
			t.Fatalf("inconsistent result: %v, %q, %v", c, reason, err)
		}
		if err == nil && !real[tok] {
			t.Fatalf("verified a token the ring did not sign: %q", tok)
		}
		if reason == ReasonMalformed && !malformed[tok] {
			t.Fatalf("malformed, but the ring did not sign it: %q", tok)
		}
		if err == nil && !strings.Contains(string(mustPayload(t, tok)), `"jti"`) && c.ID != DigestID(tok) {
			t.Fatalf("token without jti has id %q", c.ID)
		}
		if err != nil && len(tok) >= 16 && strings.Contains(err.Error(), tok) {
			t.Fatalf("error %q contains the token", err)
		}
	})
}

// FuzzTokenFromQuery: the rest never holds the parameter, and taking the
// token out again changes nothing.
func FuzzTokenFromQuery(f *testing.F) {
	for _, s := range []string{"", "token=a", "a=1&token=b&c=2", "tok%65n=x&token=y", "a=%zz&token", "&&token=&", "token=a;b=c", "a+b=c&token=%2E"} {
		f.Add(s, "token")
	}
	f.Add("a b=1&a+b=2", "a b")
	f.Add("=x&&", "")
	f.Fuzz(func(t *testing.T, raw, param string) {
		token, rest, found := TokenFromQuery(raw, param)
		if !found && (rest != raw || token != "") {
			t.Fatalf("not found, yet rest %q != raw %q or token %q", rest, raw, token)
		}
		if len(rest) > len(raw) {
			t.Fatalf("rest %q longer than raw %q", rest, raw)
		}
		if rest != "" {
			for piece := range strings.SplitSeq(rest, "&") {
				key, _, _ := strings.Cut(piece, "=")
				if k, err := url.QueryUnescape(key); err == nil {
					key = k
				}
				if key == param {
					t.Fatalf("rest %q still has %q", rest, param)
				}
			}
		}
		if v, _ := url.ParseQuery(rest); v.Has(param) {
			t.Fatalf("rest %q still parses with %q", rest, param)
		}
		if t2, r2, f2 := TokenFromQuery(rest, param); f2 || r2 != rest || t2 != "" {
			t.Fatalf("second pass on %q: %q, %q, %v", rest, t2, r2, f2)
		}
	})
}

func benchVerify(b *testing.B, kr *KeyRing) {
	c := baseClaims()
	c.Data = map[string]any{"list": "news"}
	tok := mustSign(b, kr, c)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := kr.Verify(tok, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B) { benchVerify(b, hsRing(b)) }
func BenchmarkVerifyEdDSA(b *testing.B) { benchVerify(b, edRing(b)) }

func BenchmarkTokenFromQuery(b *testing.B) {
	q := "list=news&utm_source=mail&token=eyJhbGciOiJIUzI1NiIsImtpZCI6ImRlZmF1bHQifQ.eyJzdWIiOiI0MiJ9.c2ln&x=1"
	b.ReportAllocs()
	for b.Loop() {
		TokenFromQuery(q, "token")
	}
}

func BenchmarkBind(b *testing.B) {
	c := baseClaims()
	c.Query = "list=news"
	b.ReportAllocs()
	for b.Loop() {
		if !Bind(c, "App.example.com:443", "/unsubscribe", "list=news", "GET", false, nil) {
			b.Fatal("refused")
		}
	}
}

func TestNewJTINeverLooksLikeAFlag(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 5000; i++ {
		j := NewJTI()
		if len(j) != 22 || strings.HasPrefix(j, "-") || seen[j] {
			t.Fatalf("NewJTI() = %q (seen before: %v)", j, seen[j])
		}
		seen[j] = true
	}
}

// TestVerifyRemembersSignatureNotTime: a token verified once is verified
// again from memory, but the clock still applies to it on every call: the
// same bytes expire at exp and are not valid before nbf. A ring of other
// keys (a reload, a rotation) remembers nothing of another ring's tokens.
func TestVerifyRemembersSignatureNotTime(t *testing.T) {
	kr := hsRing(t)
	c := baseClaims()
	c.MaxUses = 0
	c.NotBefore = jwt.NewNumericDate(t0.Add(-30 * time.Second))
	tok := mustSign(t, kr, c)
	for i := range 2 {
		if got, reason, err := kr.Verify(tok, t0); err != nil || got.ID != c.ID {
			t.Fatalf("call %d: %q %v", i, reason, err)
		}
	}
	if kr.seen.get(tok) == nil {
		t.Fatal("a verified token was not remembered")
	}
	cases := []struct {
		now  time.Time
		want string
	}{
		{t0.Add(time.Hour - time.Second), ""},
		{t0.Add(time.Hour), ReasonExpired},
		{t0.Add(-30 * time.Second), ""},
		{t0.Add(-31 * time.Second), ReasonNotYetValid},
	}
	for _, tc := range cases {
		_, reason, err := kr.Verify(tok, tc.now)
		if reason != tc.want || (err == nil) != (tc.want == "") {
			t.Errorf("at %v: %q %v, want %q", tc.now.Sub(t0), reason, err, tc.want)
		}
		if tc.want == ReasonExpired && !errors.Is(err, jwt.ErrTokenExpired) {
			t.Errorf("expired: %v does not wrap jwt.ErrTokenExpired", err)
		}
	}
	// Another ring's key: a bad signature, whatever this ring remembers.
	other := mustRing(t, HS256Key(bytes.Repeat([]byte{1}, 32), "default"))
	if _, reason, _ := other.Verify(tok, t0); reason != ReasonBadSignature {
		t.Errorf("another ring: %q, want bad signature", reason)
	}
	// A link with limited uses, or a login link, is not remembered.
	for _, lc := range []func(*Claims){func(c *Claims) { c.MaxUses = 1 }, func(c *Claims) { c.MaxUses = 0; c.Mode = ModeLogin }} {
		c := baseClaims()
		lc(c)
		tok := mustSign(t, kr, c)
		if _, reason, err := kr.Verify(tok, t0); err != nil || kr.seen.get(tok) != nil {
			t.Errorf("%+v: %q %v, remembered %v", c, reason, err, kr.seen.get(tok) != nil)
		}
	}
	// A refused token is not remembered.
	if _, reason, _ := kr.Verify(tok+"x", t0); reason != ReasonBadSignature || kr.seen.get(tok+"x") != nil {
		t.Errorf("tampered token: %q, remembered %v", reason, kr.seen.get(tok+"x") != nil)
	}
}

// TestVerifiedTokensBounded: the memory of verified tokens stays within its
// bound however many different tokens verify, and forgets oversized ones.
func TestVerifiedTokensBounded(t *testing.T) {
	var v verifiedTokens
	c := baseClaims()
	for i := range 3 * maxVerifiedTokens {
		v.put(strings.Repeat("t", 10)+string(rune('a'+i%26))+strings.Repeat("x", i%97)+time.Duration(i).String(), c)
	}
	if n := len(v.m); n > maxVerifiedTokens {
		t.Errorf("%d tokens remembered, bound %d", n, maxVerifiedTokens)
	}
	big := strings.Repeat("b", maxRememberedToken+1)
	v.put(big, c)
	if v.get(big) != nil {
		t.Error("an oversized token was remembered")
	}
}
