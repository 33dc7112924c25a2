package password

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// BenchmarkVerify measures one failed login per scheme, each at the cost
// its application makes by default: what an attempt costs the gateway
// until the account's hash is upgraded, next to an unknown account's.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	h := newHasher(b, DefaultParams, 0)
	const pw = "correct horse battery staple"
	ours, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	dk, err := pbkdf2.Key(sha256.New, pw, []byte("YjfeVSy8uKEHDwpdZ7tlbG"), 1_200_000, 32)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		hash string
	}{
		{"argon2id/m=19456,t=2,p=1", ours},
		// Django 6.0's default iterations.
		{"django_pbkdf2_sha256/i=1200000", "pbkdf2_sha256$1200000$YjfeVSy8uKEHDwpdZ7tlbG$" + base64.StdEncoding.EncodeToString(dk)},
		// Django's Argon2PasswordHasher defaults.
		{"django_argon2/argon2id,m=102400,t=2,p=8", argon2Encoded(true, "argon2id", pw, "YjfeVSy8uKEHDwpdZ7tlbG", 2, 102400, 8, 16)},
		// Django's bcrypt hashers' default rounds, 12.
		{"django_bcrypt_sha256/cost=12", djangoBcryptSHA256(b, pw, 12)},
		{"django_bcrypt/cost=12", djangoBcrypt(b, pw, 12)},
		// passlib 1.7's default rounds for pbkdf2_sha512 (Invenio's).
		{"passlib_pbkdf2_sha512/rounds=25000", passlibPBKDF2SHA512(pw, []byte("0123456789abcdef"), 25000)},
	} {
		if err := Check(bc.hash); err != nil {
			b.Fatal(err)
		}
		if ok, _, err := h.Verify(ctx, pw, bc.hash); !ok || err != nil {
			b.Fatalf("%s does not verify: %v", bc.name, err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, _, err := h.Verify(ctx, "wrong password", bc.hash); ok || err != nil {
					b.Fatal("wrong answer")
				}
			}
		})
	}
	b.Run("unknown account/m=19456,t=2,p=1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := h.VerifyUnknown(ctx, "wrong password"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
