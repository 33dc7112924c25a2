package caddymodule

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/pem"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/link"
)

// TestLinkKeyRecords: after a secret rotation the ring has the kid
// "default" twice; the listing says which one apps should sign with.
func TestLinkKeyRecords(t *testing.T) {
	newSecret, oldSecret := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	ring, err := link.NewKeyRing(link.HS256Key(newSecret, "default"), link.HS256Key(oldSecret, "default"), link.Ed25519PublicKey("app", pub))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := linkKeyRecords(ring)
	if err != nil {
		t.Fatal(err)
	}
	b := base64.RawURLEncoding.EncodeToString
	want := []linkKeyJSON{
		{KID: "default", Alg: "HS256", Use: "signs", Secret: b(link.HS256Key(newSecret, "default").Secret)},
		{KID: "default", Alg: "HS256", Use: "previous", Secret: b(link.HS256Key(oldSecret, "default").Secret)},
		{KID: "app", Alg: "EdDSA", Use: "verifies", PublicKey: b(pub)},
	}
	if len(recs) != len(want) {
		t.Fatalf("records %+v", recs)
	}
	for i, w := range want {
		got := recs[i]
		pemText := got.PublicKeyPEM
		got.PublicKeyPEM = ""
		if got != w {
			t.Errorf("record %d: %+v, want %+v", i, got, w)
		}
		if w.Alg == "EdDSA" {
			blk, _ := pem.Decode([]byte(pemText))
			if blk == nil || blk.Type != "PUBLIC KEY" {
				t.Errorf("record %d: PEM %q", i, pemText)
			} else if k, err := link.ParseEd25519PublicKeyPEM([]byte(pemText)); err != nil || !k.Equal(pub) {
				t.Errorf("record %d: PEM holds %x, %v", i, k, err)
			}
		} else if pemText != "" {
			t.Errorf("record %d: PEM for an HS256 key", i)
		}
	}
}
