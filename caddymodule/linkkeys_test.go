package caddymodule

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/latchkeyhq/latchkey/internal/link"
)

// TestLinkKeyRingPublicKey: an ed25519 key given as public_key_file
// verifies the links an app signs with the private half and never signs.
func TestLinkKeyRingPublicKey(t *testing.T) {
	dir := t.TempDir()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubFile, privFile := filepath.Join(dir, "app.pub.pem"), filepath.Join(dir, "app.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{1}, 32)
	ring := func(keys ...LinkKeyConfig) (*link.KeyRing, error) {
		a := &App{LinkKeys: keys, secret: secret}
		return a.linkKeyRing(caddy.NewReplacer())
	}

	kr, err := ring(LinkKeyConfig{ID: "default", Alg: "hs256"}, LinkKeyConfig{ID: "app", Alg: "ed25519", PublicKeyFile: pubFile})
	if err != nil {
		t.Fatal(err)
	}
	app, err := link.NewKeyRing(link.Ed25519Key("app", priv))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := &link.Claims{Target: "app.example.com/unsubscribe", Mode: link.ModeRequest, MaxUses: 1}
	c.Subject, c.ID = "42", link.NewJTI()
	c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)), jwt.NewNumericDate(now.Add(time.Hour))
	tok, err := app.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, reason, err := kr.Verify(tok, now); err != nil {
		t.Fatalf("the gateway refused the app's link: %s, %v", reason, err)
	}
	if kid := kr.SigningKID(); kid != "default" {
		t.Fatalf("the gateway signs with %q", kid)
	}

	for _, tt := range []struct {
		name string
		keys []LinkKeyConfig
		want string
	}{
		{"public key first", []LinkKeyConfig{{ID: "app", Alg: "ed25519", PublicKeyFile: pubFile}, {ID: "default", Alg: "hs256"}}, "verify-only"},
		{"public key alone", []LinkKeyConfig{{ID: "app", Alg: "ed25519", PublicKeyFile: pubFile}}, "verify-only"},
		{"both files", []LinkKeyConfig{{ID: "default", Alg: "hs256"}, {ID: "app", Alg: "ed25519", PrivateKeyFile: privFile, PublicKeyFile: pubFile}}, "not both"},
		{"no file", []LinkKeyConfig{{ID: "default", Alg: "hs256"}, {ID: "app", Alg: "ed25519"}}, "needs private_key_file"},
		{"private key as public", []LinkKeyConfig{{ID: "default", Alg: "hs256"}, {ID: "app", Alg: "ed25519", PublicKeyFile: privFile}}, "public key was expected"},
		{"public key as private", []LinkKeyConfig{{ID: "default", Alg: "hs256"}, {ID: "app", Alg: "ed25519", PrivateKeyFile: pubFile}}, `"PRIVATE KEY"`},
		{"missing file", []LinkKeyConfig{{ID: "default", Alg: "hs256"}, {ID: "app", Alg: "ed25519", PublicKeyFile: filepath.Join(dir, "nope.pem")}}, "no such file"},
	} {
		if _, err := ring(tt.keys...); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"app"`) {
			t.Errorf("%s: error %v, want one naming key \"app\" and saying %q", tt.name, err, tt.want)
		}
	}
}
