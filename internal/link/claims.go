package link

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ClaimError is why a signed token's claims are not a link's. It unwraps to
// jwt.ErrTokenMalformed (not JSON, or a claim of the wrong type),
// jwt.ErrTokenRequiredClaimMissing or jwt.ErrTokenInvalidClaims.
type ClaimError struct {
	Claim string // "" when it is about the payload as a whole
	msg   string
	kind  error
}

func (e *ClaimError) Error() string {
	if e.Claim == "" {
		return e.msg
	}
	return e.Claim + ": " + e.msg
}

func (e *ClaimError) Unwrap() error { return e.kind }

func claimErr(claim string, kind error, format string, args ...any) *ClaimError {
	return &ClaimError{Claim: claim, msg: fmt.Sprintf(format, args...), kind: kind}
}

// maxNumericDate is 9999-12-31T23:59:59Z: a time claim beyond it is a bug
// (milliseconds instead of seconds, most often).
const maxNumericDate = 253402300799

// decodeClaims reads a signed token's payload as a link's claims, by the
// rules of docs/links.md: claim names match exactly (JSON is case-sensitive,
// encoding/json's struct decoding is not); a claim of the wrong type is an
// error, never a zero value; null is the same as leaving the claim out;
// claims it does not know (iss, aud, an app's own) are ignored. It fills in
// the defaults of mode and max, but not jti (Verify does, from the token).
func decodeClaims(payload []byte) (*Claims, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		return nil, claimErr("", jwt.ErrTokenMalformed, "payload is not a JSON object")
	}
	for k, v := range m {
		if bytes.Equal(v, []byte("null")) {
			delete(m, k)
		}
	}
	c := &Claims{Mode: DefaultMode, MaxUses: DefaultMaxUses}
	var err error
	str := func(name string, dst *string) {
		if raw, ok := m[name]; ok && err == nil {
			if json.Unmarshal(raw, dst) != nil {
				err = claimErr(name, jwt.ErrTokenMalformed, "must be a string")
			}
		}
	}
	date := func(name string) *jwt.NumericDate {
		raw, ok := m[name]
		if !ok || err != nil {
			return nil
		}
		d, e := numericDate(raw)
		if e != nil {
			err = claimErr(name, jwt.ErrTokenMalformed, "%s", e.Error())
		}
		return d
	}

	str("sub", &c.Subject)
	str("jti", &c.ID)
	str("tgt", &c.Target)
	str("q", &c.Query)
	str("mode", &c.Mode)
	c.ExpiresAt = date("exp")
	c.NotBefore = date("nbf")
	c.IssuedAt = date("iat")
	if err != nil {
		return nil, err
	}
	if raw, ok := m["max"]; ok {
		n, e := strconv.ParseInt(string(raw), 10, 64)
		if e != nil || n > math.MaxInt32 {
			return nil, claimErr("max", jwt.ErrTokenMalformed, "must be a whole number from 0 to %d, written without a fraction or exponent", math.MaxInt32)
		}
		c.MaxUses = int(n)
	}
	if raw, ok := m["mth"]; ok {
		if json.Unmarshal(raw, &c.Methods) != nil {
			return nil, claimErr("mth", jwt.ErrTokenMalformed, "must be an array of strings")
		}
	}
	if raw, ok := m["data"]; ok {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber() // large integer ids keep their precision
		if d.Decode(&c.Data) != nil {
			return nil, claimErr("data", jwt.ErrTokenMalformed, "must be a JSON object")
		}
	}

	switch {
	case c.ExpiresAt == nil:
		return nil, claimErr("exp", jwt.ErrTokenRequiredClaimMissing, "is required")
	case c.Subject == "":
		return nil, claimErr("sub", jwt.ErrTokenRequiredClaimMissing, "is required")
	case c.Target == "":
		return nil, claimErr("tgt", jwt.ErrTokenRequiredClaimMissing, "is required")
	case c.ID == "" && m["jti"] != nil:
		return nil, claimErr("jti", jwt.ErrTokenInvalidClaims, "must not be empty (leave it out instead)")
	case c.NotBefore != nil && !c.NotBefore.Before(c.ExpiresAt.Time):
		return nil, claimErr("nbf", jwt.ErrTokenInvalidClaims, "is not before exp, so the link would never work")
	}
	if err := c.check(); err != nil {
		return nil, claimErr("", jwt.ErrTokenInvalidClaims, "%s", err.Error())
	}
	return c, nil
}

// numericDate reads a JWT NumericDate: a JSON number of seconds since
// 1970-01-01T00:00:00Z, a fraction allowed (and dropped, as the gateway
// counts whole seconds), from 0 to maxNumericDate.
func numericDate(raw json.RawMessage) (*jwt.NumericDate, error) {
	var n json.Number
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return nil, errors.New("must be a number (seconds since 1970-01-01T00:00:00Z)")
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > maxNumericDate {
		return nil, errors.New("must be seconds since 1970-01-01T00:00:00Z, from 0 to 253402300799 (milliseconds?)")
	}
	return jwt.NewNumericDate(time.Unix(int64(f), 0)), nil
}
