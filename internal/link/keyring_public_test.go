package link

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

func privatePEM(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

// opensslPublicPEM is `openssl pkey -in key.pem -pubout` for the key whose
// seed is 32 bytes of 7 (edPriv), as openssl 3 writes it.
const opensslPublicPEM = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=
-----END PUBLIC KEY-----
`

func TestParseEd25519PublicKeyPEM(t *testing.T) {
	want := edPriv.Public().(ed25519.PublicKey)
	for name, in := range map[string][]byte{
		"marshalled":            publicPEM(t, want),
		"openssl":               []byte(opensslPublicPEM),
		"with text around":      append(append([]byte("a comment\n"), publicPEM(t, want)...), "trailing\n"...),
		"crlf line ends":        []byte(strings.ReplaceAll(opensslPublicPEM, "\n", "\r\n")),
		"followed by other pem": append(publicPEM(t, want), pemOf(t, "X509 CRL", []byte{1})...),
	} {
		got, err := ParseEd25519PublicKeyPEM(in)
		if name == "followed by other pem" {
			if err == nil {
				t.Errorf("%s: accepted", name)
			}
			continue
		}
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: got %x, %v; want %x", name, got, err, want)
		}
	}
}

func TestParseEd25519PublicKeyPEMErrors(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := edPriv.Public()
	tests := []struct {
		name string
		in   []byte
		want string // in the error
	}{
		{"empty", nil, "no PEM block"},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"OpenSSH public key", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... me@host\n"), "OpenSSH public keys"},
		{"private key", privatePEM(t, edPriv), "public key was expected"},
		{"private key after the public one", append(publicPEM(t, pub), privatePEM(t, edPriv)...), "public key was expected"},
		{"private key before the public one", append(privatePEM(t, edPriv), publicPEM(t, pub)...), "public key was expected"},
		{"encrypted private key", pemOf(t, "ENCRYPTED PRIVATE KEY", []byte{1}), "public key was expected"},
		{"OpenSSH private key", pemOf(t, "OPENSSH PRIVATE KEY", []byte{1}), "public key was expected"},
		{"certificate", pemOf(t, "CERTIFICATE", []byte{1}), "certificate"},
		{"RSA PUBLIC KEY (PKCS#1)", pemOf(t, "RSA PUBLIC KEY", []byte{1}), `"RSA PUBLIC KEY"`},
		{"garbage DER", pemOf(t, "PUBLIC KEY", []byte{1, 2, 3}), "parsing PKIX public key"},
		{"ECDSA key", publicPEM(t, &ec.PublicKey), "not Ed25519"},
		{"two public keys", append(publicPEM(t, pub), publicPEM(t, edPriv2.Public())...), "more than one"},
	}
	for _, tt := range tests {
		k, err := ParseEd25519PublicKeyPEM(tt.in)
		if err == nil || k != nil {
			t.Errorf("%s: got %x, %v; want an error", tt.name, k, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.want)
		}
	}
}

// An app signs with its private key; the gateway holds only the public
// half, after a key of its own that signs.
func TestPublicOnlyKeyVerifies(t *testing.T) {
	pub, err := ParseEd25519PublicKeyPEM(publicPEM(t, edPriv.Public()))
	if err != nil {
		t.Fatal(err)
	}
	app := mustRing(t, Ed25519Key("app1", edPriv))
	gateway := mustRing(t, HS256Key(testSecret, "default"), Ed25519PublicKey("app1", pub))

	tok := mustSign(t, app, baseClaims())
	c, reason, err := gateway.Verify(tok, t0)
	if err != nil || reason != "" || c.Subject != "42" {
		t.Fatalf("Verify of the app's token = %v, %q, %v", c, reason, err)
	}
	// The gateway's own links are signed with its first key, never the
	// app's.
	own := mustSign(t, gateway, baseClaims())
	if _, _, err := app.Verify(own, t0); err == nil {
		t.Fatal("the app's ring verified a token the gateway signed")
	}
	// Another private key with the same kid is refused.
	forged := mustSign(t, mustRing(t, Ed25519Key("app1", edPriv2)), baseClaims())
	if _, reason, err := gateway.Verify(forged, t0); err == nil || reason != ReasonBadSignature {
		t.Fatalf("Verify of a token signed by another key = %q, %v", reason, err)
	}
	if js := string(gateway.JWKS()); !strings.Contains(js, `"kid":"app1"`) {
		t.Errorf("JWKS %s lacks the public key", js)
	}
}

func TestPublicOnlyRingCannotSign(t *testing.T) {
	pub := edPriv.Public().(ed25519.PublicKey)
	for name, ks := range map[string][]Key{
		"alone":            {Ed25519PublicKey("app1", pub)},
		"first of two":     {Ed25519PublicKey("app1", pub), HS256Key(testSecret, "default")},
		"public field set": {{ID: "app1", Alg: AlgEdDSA, Public: pub}},
	} {
		kr, err := NewKeyRing(ks...)
		if err == nil {
			_, serr := kr.Sign(baseClaims())
			t.Fatalf("%s: made a ring whose first key is verify-only (Sign: %v)", name, serr)
		}
		if !strings.Contains(err.Error(), "verify-only") || !strings.Contains(err.Error(), `"app1"`) {
			t.Errorf("%s: error %q does not say the first key is verify-only", name, err)
		}
	}
}
