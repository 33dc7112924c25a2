package link

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
)

// After a secret rotation the HS256 key "default" exists under the new
// secret and under the previous ones: links signed with any of them verify,
// and the new one signs.
func TestSameKidSeveralKeys(t *testing.T) {
	older := []byte("the gateway secret before the last")
	old := []byte("the gateway secret before, 32 b+")
	ring := mustRing(t, HS256Key(testSecret, "default"), HS256Key(old, "default"), HS256Key(older, "default"))
	for name, secret := range map[string][]byte{"new": testSecret, "previous": old, "one before": older} {
		tok := mustSign(t, mustRing(t, HS256Key(secret, "default")), baseClaims())
		if _, reason, err := ring.Verify(tok, t0); err != nil {
			t.Errorf("token of the %s secret: %q, %v", name, reason, err)
		}
	}
	// The ring signs with the first key of the kid, so a ring of the new
	// secret alone verifies what it signs.
	tok := mustSign(t, ring, baseClaims())
	if _, _, err := mustRing(t, HS256Key(testSecret, "default")).Verify(tok, t0); err != nil {
		t.Errorf("ring did not sign with its first key: %v", err)
	}
	if _, _, err := mustRing(t, HS256Key(old, "default")).Verify(tok, t0); err == nil {
		t.Error("ring signed with a previous key")
	}
	// A secret that is none of them is still refused.
	stranger := mustSign(t, mustRing(t, HS256Key([]byte("not one of the ring's secrets, 32"), "default")), baseClaims())
	if _, reason, _ := ring.Verify(stranger, t0); reason != ReasonBadSignature {
		t.Errorf("token of another secret: %q, want %q", reason, ReasonBadSignature)
	}
	// So is a previous key's token under another kid.
	other := mustSign(t, mustRing(t, HS256Key(old, "other")), baseClaims())
	if _, reason, _ := ring.Verify(other, t0); reason != ReasonBadSignature {
		t.Errorf("token of unknown kid: %q", reason)
	}
}

func TestSameKidEdDSA(t *testing.T) {
	pub2 := edPriv2.Public().(ed25519.PublicKey)
	ring := mustRing(t, Ed25519Key("ed", edPriv), Ed25519PublicKey("ed", pub2))
	for _, priv := range []ed25519.PrivateKey{edPriv, edPriv2} {
		tok := mustSign(t, mustRing(t, Ed25519Key("ed", priv)), baseClaims())
		if _, reason, err := ring.Verify(tok, t0); err != nil {
			t.Errorf("token of key %x…: %q, %v", priv.Public().(ed25519.PublicKey)[:4], reason, err)
		}
	}
	var set struct {
		Keys []struct{ Kid, X string }
	}
	if err := json.Unmarshal(ring.JWKS(), &set); err != nil || len(set.Keys) != 2 || set.Keys[0].Kid != "ed" || set.Keys[1].Kid != "ed" || set.Keys[1].X != b64(pub2) {
		t.Errorf("JWKS %s (%v): want both public keys under kid ed", ring.JWKS(), err)
	}
}

func TestSameKidRefusals(t *testing.T) {
	_, err := NewKeyRing(HS256Key(testSecret, "a"), Ed25519Key("a", edPriv))
	if err == nil || !strings.Contains(err.Error(), "one algorithm") {
		t.Errorf("HS256 and EdDSA under one kid: %v", err)
	}
	// A header's alg is checked against the kid's keys.
	ring := mustRing(t, HS256Key(testSecret, "a"), HS256Key([]byte("another secret of thirty-two b.."), "a"))
	tok := forge(t, map[string]any{"alg": "EdDSA", "kid": "a", "typ": "JWT"}, claimsMap(), ed(edPriv))
	if _, reason, _ := ring.Verify(tok, t0); reason != ReasonBadSignature {
		t.Errorf("EdDSA token for an HS256 kid: %q", reason)
	}
}

func TestKeys(t *testing.T) {
	old := []byte("the gateway secret before, 32 b+")
	pub2 := edPriv2.Public().(ed25519.PublicKey)
	ring := mustRing(t,
		Ed25519Key("k2", edPriv),
		HS256Key(testSecret, "default"),
		HS256Key(old, "default"),
		HS256Key(old, "default"), // given twice: kept once
		Ed25519PublicKey("app1", pub2),
	)
	got := ring.Keys()
	want := []KeyInfo{
		{ID: "k2", Alg: AlgEdDSA, Use: UseSigns, Public: edPriv.Public().(ed25519.PublicKey), CanSign: true},
		{ID: "default", Alg: AlgHS256, Use: UseVerifies, Secret: HS256Key(testSecret, "default").Secret, CanSign: true},
		{ID: "default", Alg: AlgHS256, Use: UsePrevious, Secret: HS256Key(old, "default").Secret, CanSign: true},
		{ID: "app1", Alg: AlgEdDSA, Use: UseVerifies, Public: pub2},
	}
	if len(got) != len(want) {
		t.Fatalf("Keys: %d keys, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Alg != w.Alg || g.Use != w.Use || g.CanSign != w.CanSign || !bytes.Equal(g.Secret, w.Secret) || !bytes.Equal(g.Public, w.Public) {
			t.Errorf("key %d: %+v, want %+v", i, g, w)
		}
	}
	// The listing is a copy.
	clear(got[1].Secret)
	if !bytes.Equal(ring.Keys()[1].Secret, want[1].Secret) {
		t.Error("Keys shares the ring's secret")
	}
}
