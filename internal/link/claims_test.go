package link

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// minimalClaims are the claims an app must send: sub, exp and tgt.
func minimalClaims() map[string]any {
	return map[string]any{"sub": "42", "tgt": "app.example.com/unsubscribe", "exp": t0.Add(time.Hour).Unix()}
}

// TestVerifyMalformed: a token a key of the ring signed, whose claims are
// not a link's, is refused as malformed (the signer's bug), not as a bad
// signature; with another key it stays a bad signature.
func TestVerifyMalformed(t *testing.T) {
	hsKey := HS256Key(testSecret, "default")
	kr := mustRing(t, hsKey, Ed25519Key("ed1", edPriv))
	hsHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "default"}
	with := func(edit func(map[string]any)) map[string]any {
		m := claimsMap()
		edit(m)
		return m
	}
	set := func(k string, v any) map[string]any { return with(func(m map[string]any) { m[k] = v }) }
	del := func(k string) map[string]any { return with(func(m map[string]any) { delete(m, k) }) }
	exp := t0.Add(time.Hour).Unix()

	tests := []struct {
		name    string
		header  any // nil: hsHeader
		payload any // a map, or raw JSON text
		is      error
		msg     string // in the error
	}{
		{"missing exp", nil, del("exp"), jwt.ErrTokenRequiredClaimMissing, "exp: is required"},
		{"null exp", nil, set("exp", nil), jwt.ErrTokenRequiredClaimMissing, "exp: is required"},
		{"EXP instead of exp", nil, with(func(m map[string]any) { m["EXP"] = m["exp"]; delete(m, "exp") }), jwt.ErrTokenRequiredClaimMissing, "exp: is required"},
		{"exp a word", nil, set("exp", "tomorrow"), jwt.ErrTokenMalformed, "exp: must be a number"},
		{"exp a number in a string", nil, set("exp", "1893553445"), jwt.ErrTokenMalformed, "exp: must be a number"},
		{"exp a boolean", nil, set("exp", true), jwt.ErrTokenMalformed, "exp: must be a number"},
		{"exp in milliseconds", nil, set("exp", exp*1000), jwt.ErrTokenMalformed, "milliseconds"},
		{"exp negative", nil, set("exp", -1), jwt.ErrTokenMalformed, "exp: must be seconds"},
		{"nbf a word", nil, set("nbf", "now"), jwt.ErrTokenMalformed, "nbf: must be a number"},
		{"nbf at exp", nil, set("nbf", exp), jwt.ErrTokenInvalidClaims, "nbf: is not before exp"},
		{"iat a word", nil, set("iat", "now"), jwt.ErrTokenMalformed, "iat: must be a number"},
		{"missing sub", nil, del("sub"), jwt.ErrTokenRequiredClaimMissing, "sub: is required"},
		{"sub empty", nil, set("sub", ""), jwt.ErrTokenRequiredClaimMissing, "sub: is required"},
		{"sub a number", nil, set("sub", 42), jwt.ErrTokenMalformed, "sub: must be a string"},
		{"sub a name", nil, set("sub", "luke"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"sub zero", nil, set("sub", "0"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"sub leading zero", nil, set("sub", "042"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"sub negative", nil, set("sub", "-42"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"sub an address with a name", nil, set("sub", "Luke <luke@example.com>"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"sub an address in brackets", nil, set("sub", "<luke@example.com>"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"sub an address with space", nil, set("sub", " luke@example.com"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"sub two addresses", nil, set("sub", "luke@example.com, leia@example.com"), jwt.ErrTokenInvalidClaims, "sub is neither"},
		{"missing tgt", nil, del("tgt"), jwt.ErrTokenRequiredClaimMissing, "tgt: is required"},
		{"tgt an array", nil, set("tgt", []string{"app.example.com/x"}), jwt.ErrTokenMalformed, "tgt: must be a string"},
		{"tgt a URL", nil, set("tgt", "https://app.example.com/unsubscribe"), jwt.ErrTokenInvalidClaims, "scheme"},
		{"tgt without path", nil, set("tgt", "app.example.com"), jwt.ErrTokenInvalidClaims, "host and path"},
		{"tgt host upper-case", nil, set("tgt", "App.example.com/x"), jwt.ErrTokenInvalidClaims, "lower-case"},
		{"tgt with port 443", nil, set("tgt", "app.example.com:443/x"), jwt.ErrTokenInvalidClaims, "default port"},
		{"q a number", nil, set("q", 1), jwt.ErrTokenMalformed, "q: must be a string"},
		{"mode unknown", nil, set("mode", "admin"), jwt.ErrTokenInvalidClaims, "mode must be"},
		{"mode empty", nil, set("mode", ""), jwt.ErrTokenInvalidClaims, "mode must be"},
		{"mode a number", nil, set("mode", 1), jwt.ErrTokenMalformed, "mode: must be a string"},
		{"max negative", nil, set("max", -1), jwt.ErrTokenInvalidClaims, "max uses must not be negative"},
		{"max a fraction", nil, set("max", 1.5), jwt.ErrTokenMalformed, "max: must be a whole number"},
		{"max 1.0", nil, `{"sub":"42","tgt":"app.example.com/unsubscribe","exp":1893553445,"max":1.0}`, jwt.ErrTokenMalformed, "max: must be a whole number"},
		{"max in a string", nil, set("max", "1"), jwt.ErrTokenMalformed, "max: must be a whole number"},
		{"max too large", nil, set("max", int64(1)<<40), jwt.ErrTokenMalformed, "max: must be a whole number"},
		{"mth a string", nil, set("mth", "GET"), jwt.ErrTokenMalformed, "mth: must be an array"},
		{"mth numbers", nil, set("mth", []int{1}), jwt.ErrTokenMalformed, "mth: must be an array"},
		{"mth lower-case", nil, set("mth", []string{"get"}), jwt.ErrTokenInvalidClaims, "methods"},
		{"data a string", nil, set("data", "news"), jwt.ErrTokenMalformed, "data: must be a JSON object"},
		{"data an array", nil, set("data", []int{1}), jwt.ErrTokenMalformed, "data: must be a JSON object"},
		{"jti empty", nil, set("jti", ""), jwt.ErrTokenInvalidClaims, "jti: must not be empty"},
		{"jti a number", nil, set("jti", 7), jwt.ErrTokenMalformed, "jti: must be a string"},
		{"jti posing as a digest", nil, set("jti", DigestPrefix+"abc"), jwt.ErrTokenInvalidClaims, "jti must not start with"},
		{"payload not JSON", nil, "{not json", jwt.ErrTokenMalformed, "payload is not a JSON object"},
		{"payload an array", nil, "[1]", jwt.ErrTokenMalformed, "payload is not a JSON object"},
		{"payload null", nil, "null", jwt.ErrTokenMalformed, "payload is not a JSON object"},
		{"typ not JWT", map[string]any{"alg": "HS256", "kid": "default", "typ": "at+jwt"}, claimsMap(), jwt.ErrTokenMalformed, "typ"},
		{"typ a number", map[string]any{"alg": "HS256", "kid": "default", "typ": 1}, claimsMap(), jwt.ErrTokenMalformed, "typ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if header == nil {
				header = hsHeader
			}
			tok := forge(t, header, tt.payload, hs(hsKey.Secret))
			c, reason, err := kr.Verify(tok, t0)
			if c != nil || reason != ReasonMalformed {
				t.Fatalf("Verify = %+v, %q, %v; want %q", c, reason, err, ReasonMalformed)
			}
			var le *Error
			if !errors.As(err, &le) || le.Reason != ReasonMalformed || !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v: want an *Error that is %v and says %q", err, tt.is, tt.msg)
			}
			// Signed by a key the ring does not have, the same claims are a
			// bad signature: a forger learns nothing about them.
			other := forge(t, header, tt.payload, hs(HS256Key([]byte("another secret another secret 32"), "default").Secret))
			if _, reason, _ := kr.Verify(other, t0); reason != ReasonBadSignature {
				t.Errorf("with another key: %q, want %q", reason, ReasonBadSignature)
			}
		})
	}

	// EdDSA-signed claims are decoded by the same rules.
	tok := forge(t, map[string]any{"alg": "EdDSA", "kid": "ed1"}, del("exp"), ed(edPriv))
	if _, reason, _ := kr.Verify(tok, t0); reason != ReasonMalformed {
		t.Errorf("EdDSA token without exp: %q", reason)
	}
	// A payload that is not strict base64url, signed as it is.
	hb, _ := json.Marshal(hsHeader)
	pb, _ := json.Marshal(claimsMap())
	for len(pb)%3 == 0 {
		pb = append(pb, ' ')
	}
	input := b64(hb) + "." + base64.URLEncoding.EncodeToString(pb)
	if _, reason, _ := kr.Verify(input+"."+b64(hs(hsKey.Secret)(input)), t0); reason != ReasonMalformed {
		t.Errorf("padded payload: %q", reason)
	}
}

// TestVerifyDefaults: what a token an app mints may leave out.
func TestVerifyDefaults(t *testing.T) {
	kr := hsRing(t)
	key := HS256Key(testSecret, "default").Secret
	header := map[string]any{"alg": "HS256", "kid": "default"}

	tok := forge(t, header, minimalClaims(), hs(key))
	c, reason, err := kr.Verify(tok, t0)
	if err != nil {
		t.Fatalf("minimal claims: %q, %v", reason, err)
	}
	if c.Mode != ModeRequest || c.MaxUses != 1 || c.IssuedAt != nil || c.NotBefore != nil || c.Methods != nil || c.Data != nil || c.Query != "" {
		t.Errorf("defaults: %+v; want mode request, max 1, no iat", c)
	}
	if c.ID != DigestID(tok) || !strings.HasPrefix(c.ID, "sha256:") || len(c.ID) != len("sha256:")+43 {
		t.Errorf("id %q, want the token's digest", c.ID)
	}
	if id, err := c.UserID(); id != 42 || err != nil || c.Email() != "" {
		t.Errorf("user %d, %v, %q", id, err, c.Email())
	}
	// Same claims, another token (another iat): another digest.
	m := minimalClaims()
	m["iat"] = t0.Unix()
	tok2 := forge(t, header, m, hs(key))
	if c2, _, err := kr.Verify(tok2, t0); err != nil || c2.ID == c.ID || c2.ID != DigestID(tok2) {
		t.Errorf("second token: %v, id %q", err, c2.ID)
	}

	tests := []struct {
		name  string
		edit  func(map[string]any)
		check func(*Claims) bool
	}{
		{"sub an address", func(m map[string]any) { m["sub"] = "Luke@Example.com" }, func(c *Claims) bool {
			_, err := c.UserID()
			return err != nil && c.Email() == "luke@example.com" && c.Subject == "Luke@Example.com"
		}},
		{"max 0", func(m map[string]any) { m["max"] = 0 }, func(c *Claims) bool { return c.MaxUses == 0 }},
		{"max 5", func(m map[string]any) { m["max"] = 5 }, func(c *Claims) bool { return c.MaxUses == 5 }},
		{"mode login", func(m map[string]any) { m["mode"] = "login" }, func(c *Claims) bool { return c.Mode == ModeLogin }},
		{"nulls are left out", func(m map[string]any) { m["max"], m["mode"], m["jti"], m["iat"], m["data"] = nil, nil, nil, nil, nil }, func(c *Claims) bool {
			return c.MaxUses == 1 && c.Mode == ModeRequest && c.IssuedAt == nil && strings.HasPrefix(c.ID, DigestPrefix)
		}},
		{"jti kept", func(m map[string]any) { m["jti"] = "order-1234" }, func(c *Claims) bool { return c.ID == "order-1234" }},
		{"exp with a fraction", func(m map[string]any) { m["exp"] = float64(t0.Unix()) + 10.9 }, func(c *Claims) bool { return c.ExpiresAt.Equal(t0.Add(10 * time.Second)) }},
		{"other claims ignored", func(m map[string]any) { m["iss"], m["aud"], m["app"] = "newsletter", 7, []int{1} }, func(c *Claims) bool { return c.Issuer == "" }},
		{"data numbers kept exact", func(m map[string]any) { m["data"] = map[string]any{"id": int64(1) << 60} }, func(c *Claims) bool { return c.Data["id"] == json.Number("1152921504606846976") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := minimalClaims()
			tt.edit(m)
			c, reason, err := kr.Verify(forge(t, header, m, hs(key)), t0)
			if err != nil || !tt.check(c) {
				t.Errorf("Verify = %+v, %q, %v", c, reason, err)
			}
		})
	}
	for _, typ := range []string{"JWT", "jwt"} {
		h := map[string]any{"alg": "HS256", "kid": "default", "typ": typ}
		if _, reason, err := kr.Verify(forge(t, h, minimalClaims(), hs(key)), t0); err != nil {
			t.Errorf("typ %q: %q, %v", typ, reason, err)
		}
	}
}

func TestSignKeepsJTIAndMode(t *testing.T) {
	kr := hsRing(t)
	for name, edit := range map[string]func(*Claims){
		"no jti":         func(c *Claims) { c.ID = "" },
		"digest as jti":  func(c *Claims) { c.ID = DigestPrefix + "x" },
		"no mode":        func(c *Claims) { c.Mode = "" },
		"sub an address": func(c *Claims) { c.Subject = "Luke <luke@example.com>" },
	} {
		c := baseClaims()
		edit(c)
		if _, err := kr.Sign(c); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	c := baseClaims()
	c.Subject = "luke@example.com"
	if _, _, err := kr.Verify(mustSign(t, kr, c), t0); err != nil {
		t.Errorf("address as sub: %v", err)
	}
}

func mustPayload(t testing.TB, tok string) []byte {
	t.Helper()
	p, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzDecodeClaims reaches what FuzzVerify cannot without the key: claims
// that decode are ones the gateway could have signed, and say the same
// once signed and verified again.
func FuzzDecodeClaims(f *testing.F) {
	for _, m := range []map[string]any{claimsMap(), minimalClaims()} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte(`{"sub":"luke@example.com","tgt":"a.example/x","exp":1e9,"max":0,"mode":"login","mth":["POST"],"data":{"a":[1,{"b":null}]}}`))
	f.Add([]byte(`{"sub":"42","tgt":"a.example/x","exp":1.5,"nbf":1,"iat":null,"jti":"x","q":"a=1"}`))
	f.Add([]byte(`{"sub":"42","tgt":"A.example/x","exp":2,"max":-0}`))
	f.Add([]byte(`{"sub":"42","Sub":"1","tgt":"a.example/x","exp":2,"exp":"x"}`))
	kr := hsRing(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := decodeClaims(payload)
		if err != nil {
			var ce *ClaimError
			if c != nil || !errors.As(err, &ce) {
				t.Fatalf("decodeClaims = %+v, %v", c, err)
			}
			return
		}
		if c.ExpiresAt == nil || (c.Mode != ModeRequest && c.Mode != ModeLogin) || c.MaxUses < 0 || c.check() != nil {
			t.Fatalf("accepted claims that are not a link's: %+v", c)
		}
		if c.ID == "" {
			c.ID = "fuzz"
		}
		tok, err := kr.Sign(c)
		if err != nil {
			if strings.Contains(err.Error(), "limit") {
				return
			}
			t.Fatalf("decoded claims cannot be signed: %v (%+v)", err, c)
		}
		back, reason, err := kr.Verify(tok, c.ExpiresAt.Add(-time.Second))
		if err != nil && reason != ReasonNotYetValid {
			t.Fatalf("signed claims do not verify: %q, %v (%+v)", reason, err, c)
		}
		if err == nil && (back.Subject != c.Subject || back.Target != c.Target || back.MaxUses != c.MaxUses || back.Mode != c.Mode || back.ID != c.ID) {
			t.Fatalf("round trip: %+v, want %+v", back, c)
		}
	})
}

// TestDocsWorkedExample: the example in docs/links.md, which people check
// their own signing code against, is one the gateway accepts as it says.
func TestDocsWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/links.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	_, rest, ok := strings.Cut(text, "With the HS256 key `")
	keyText, _, _ := strings.Cut(rest, "`")
	var token string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, "eyJ") && strings.Count(line, ".") == 2 {
			token = line
		}
	}
	if !ok || token == "" {
		t.Fatal("no key or token found in docs/links.md")
	}
	key, err := base64.RawURLEncoding.DecodeString(keyText)
	if err != nil || len(key) != 32 || key[31] != 31 {
		t.Fatalf("key %q: %v", keyText, err)
	}
	kr := mustRing(t, Key{ID: "default", Alg: AlgHS256, Secret: key})
	c, reason, err := kr.Verify(token, time.Date(2029, 12, 31, 23, 59, 59, 0, time.UTC))
	if err != nil {
		t.Fatalf("the documented token: %q, %v", reason, err)
	}
	if c.Email() != "luke@example.com" || c.Target != "app.example.com/unsubscribe" || c.Mode != ModeRequest || c.MaxUses != 1 ||
		c.Data["list"] != "news" || !c.ExpiresAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("claims %+v", c)
	}
	if !strings.Contains(text, "`"+c.ID+"`") {
		t.Errorf("docs/links.md does not give the token's digest %s", c.ID)
	}
	if _, reason, _ := kr.Verify(token, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)); reason != ReasonExpired {
		t.Errorf("at exp: %q", reason)
	}
}
