package password

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// testParams keep argon2id cheap in the tests that do not measure it.
var testParams = Params{MemoryKiB: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func newHasher(t testing.TB, p Params, maxConcurrent int) *Hasher {
	t.Helper()
	h, err := NewHasher(p, maxConcurrent)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Passwords of Django's and passlib's test suites.
const (
	letmein    = "l\u00e8tmein"                                                             // Django's "lètmein" (passlib's UPASS_LETMEIN)
	upassTable = "t\u00e1\u0411\u2113\u0259"                                                // passlib's UPASS_TABLE
	upassWav   = "\u0399\u03c9\u03b1\u03bd\u03bd\u03b7\u03c2"                               // passlib's UPASS_WAV
	abc72      = "abc123abc123abc123abc123abc123abc123abc123abc123abc123abc123abc123abc123" // passlib's repeat_string("abc123", 72)
)

type vector struct {
	source   string // where it was published, or how it was computed
	scheme   string
	password string
	hash     string
}

// literalVectors were made by the applications themselves and published in
// their test suites; they check that this package reads each format as its
// author does.
var literalVectors = []vector{
	// Django, tests/auth_tests/test_hashers.py (Django 4.1, whose default was
	// 390,000 iterations): test_pbkdf2 and test_low_level_pbkdf2.
	{"django test_pbkdf2", SchemeDjangoPBKDF2SHA256, letmein,
		"pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="},
	{"django test_low_level_pbkdf2", SchemeDjangoPBKDF2SHA256, letmein,
		"pbkdf2_sha256$390000$seasalt2$geC/uZ92nRXDSjSxeoiBqYyRcrLzMm8xK3ro1QS1uo8="},
	// passlib, passlib/tests/test_handlers_django.py, django_pbkdf2_sha256_test
	// ("generated via django 1.4 hasher").
	{"passlib django_pbkdf2_sha256 (django 1.4)", SchemeDjangoPBKDF2SHA256, "not a password",
		"pbkdf2_sha256$10000$kjVJaVz6qsnJ$5yPHw3rwJGECpUf70daLGhOrQ5+AMxIJdz1c3bqK1Rs="},
	{"passlib django_pbkdf2_sha256 (django 1.4), UPASS_TABLE", SchemeDjangoPBKDF2SHA256, upassTable,
		"pbkdf2_sha256$10000$bEwAfNrH1TlQ$OgYUblFNUX1B8GfMqaCYUK/iHyO0pa7STTDdaEJBuY0="},

	// Django, test_hashers.py, TestUtilsHashPassArgon2: test_argon2 ("old
	// hashes with version attribute") and test_argon2_version_upgrade
	// (Django's argon2id defaults, made by argon2-cffi).
	{"django test_argon2, argon2i", SchemeDjangoArgon2, "secret",
		"argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q"},
	{"django test_argon2_version_upgrade, argon2id m=102400,t=2,p=8", SchemeDjangoArgon2, "secret",
		"argon2$argon2id$v=19$m=102400,t=2,p=8$Y041dExhNkljRUUy$TMa6A8fPJhCAUXRhJXCXdw"},
	// passlib, test_handlers_django.py, django_argon2_test.
	{"passlib django_argon2", SchemeDjangoArgon2, "password",
		"argon2$argon2i$v=19$m=256,t=1,p=1$c29tZXNhbHQ$AJFIsNZTMKTAewB4+ETN1A"},
	{"passlib django_argon2, all parameters different", SchemeDjangoArgon2, "password",
		"argon2$argon2i$v=19$m=380,t=2,p=2$c29tZXNhbHQ$SrssP8n7m/12VWPM8dvNrw"},
	{"passlib django_argon2 (django 1.10.3)", SchemeDjangoArgon2, letmein,
		"argon2$argon2i$v=19$m=512,t=2,p=2$V25jN1l4UUJZWkR1$MxpA1BD2Gh7+D79gaAw6sQ"},

	// passlib, test_handlers_django.py, django_bcrypt_sha256_test ("generated
	// via django 1.6 hasher"); the last three share a salt and differ after
	// 72 characters, which plain bcrypt would not see.
	{"passlib django_bcrypt_sha256 (django 1.6)", SchemeDjangoBcryptSHA256, letmein,
		"bcrypt_sha256$$2a$08$NDjSAIcas.EcoxCRiArvT.MkNiPYVhrsrnJsRkLueZOoV1bsQqlmC"},
	{"passlib django_bcrypt_sha256, UPASS_TABLE", SchemeDjangoBcryptSHA256, upassTable,
		"bcrypt_sha256$$2a$06$kCXUnRFQptGg491siDKNTu8RxjBGSjALHRuvhPYNFsa4Ea5d9M48u"},
	{"passlib django_bcrypt_sha256, 72 characters", SchemeDjangoBcryptSHA256, abc72,
		"bcrypt_sha256$$2a$06$Tg/oYyZTyAf.Nb3qSgN61OySmyXA8FoY4PjGizjE1QSDfuL5MXNni"},
	{"passlib django_bcrypt_sha256, 75 characters (qwr)", SchemeDjangoBcryptSHA256, abc72 + "qwr",
		"bcrypt_sha256$$2a$06$Tg/oYyZTyAf.Nb3qSgN61Ocy0BEz1RK6xslSNi8PlaLX2pe7x/KQG"},
	{"passlib django_bcrypt_sha256, 75 characters (xyz)", SchemeDjangoBcryptSHA256, abc72 + "xyz",
		"bcrypt_sha256$$2a$06$Tg/oYyZTyAf.Nb3qSgN61OvY2zoRVUa2Pugv2ExVOUT2YmhvxUFUa"},
	// passlib, test_handlers_django.py, django_bcrypt_test (bcrypt's own
	// vectors under Django's prefix).
	{"passlib django_bcrypt", SchemeDjangoBcrypt, "abcdefghijklmnopqrstuvwxyz",
		"bcrypt$$2a$10$fVH8e28OQRj9tqiDXs1e1uxpsjN0c7II7YPKXua2NAKYvM6iQk7dq"},
	{"passlib django_bcrypt, UPASS_TABLE", SchemeDjangoBcrypt, upassTable,
		"bcrypt$$2a$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG"},

	// passlib, passlib/tests/test_handlers_pbkdf2.py, pbkdf2_sha512_test.
	{"passlib pbkdf2_sha512", SchemePasslibPBKDF2SHA512, "password",
		"$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww"},
	{"passlib pbkdf2_sha512, UPASS_WAV", SchemePasslibPBKDF2SHA512, upassWav,
		"$pbkdf2-sha512$1212$KkbvoKGsAIcF8IslDR6skQ$8be/PRmd88Ps8fmPowCJttH9G3vgxpG.Krjt3KT.NP6cKJ0V4Prarqf.HBwz0dCkJ6xgWnSj2ynXSV7MlvMa8Q"},
}

// pbkdf2Ref is PBKDF2 written from its definition (RFC 8018, section 5.2),
// independently of crypto/pbkdf2: DK = T_1 || T_2 || …, where
// T_i = U_1 ^ U_2 ^ … ^ U_c, U_1 = PRF(P, S || INT(i)), U_j = PRF(P, U_{j-1}),
// and PRF is HMAC keyed with the password.
func pbkdf2Ref(h func() hash.Hash, password, salt []byte, c, dkLen int) []byte {
	var dk []byte
	for i := uint32(1); len(dk) < dkLen; i++ {
		prf := hmac.New(h, password)
		prf.Write(salt)
		prf.Write(binary.BigEndian.AppendUint32(nil, i))
		u := prf.Sum(nil)
		t := bytes.Clone(u)
		for range c - 1 {
			prf.Reset()
			prf.Write(u)
			u = prf.Sum(u[:0])
			for k := range t {
				t[k] ^= u[k]
			}
		}
		dk = append(dk, t...)
	}
	return dk[:dkLen]
}

// The stored strings below are written from each application's definition
// of its format, not with this package's encoders.

// djangoPBKDF2: Django's PBKDF2PasswordHasher.encode: the salt's text as
// UTF-8, 32 bytes of PBKDF2-HMAC-SHA256, base64.b64encode.
func djangoPBKDF2(password, salt string, iterations int) string {
	dk := pbkdf2Ref(sha256.New, []byte(password), []byte(salt), iterations, 32)
	return fmt.Sprintf("pbkdf2_sha256$%d$%s$%s", iterations, salt, base64.StdEncoding.EncodeToString(dk))
}

// passlibAB64 is passlib's ab64_encode: b64encode, '=' stripped, '+' → '.'.
func passlibAB64(b []byte) string {
	return strings.ReplaceAll(strings.TrimRight(base64.StdEncoding.EncodeToString(b), "="), "+", ".")
}

func passlibAB64Decode(s string) []byte {
	b, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(s, ".", "+"))
	if err != nil {
		panic(err)
	}
	return b
}

// passlibPBKDF2SHA512: passlib's pbkdf2_sha512: 64 bytes of
// PBKDF2-HMAC-SHA512 of the UTF-8 password, raw salt, both in ab64.
func passlibPBKDF2SHA512(password string, salt []byte, rounds int) string {
	dk := pbkdf2Ref(sha512.New, []byte(password), salt, rounds, 64)
	return fmt.Sprintf("$pbkdf2-sha512$%d$%s$%s", rounds, passlibAB64(salt), passlibAB64(dk))
}

// djangoBcryptSHA256: Django's BCryptSHA256PasswordHasher.encode: bcrypt
// of binascii.hexlify(sha256(password).digest()).
func djangoBcryptSHA256(t testing.TB, password string, cost int) string {
	d := sha256.Sum256([]byte(password))
	h, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(d[:])), cost)
	if err != nil {
		t.Fatal(err)
	}
	return "bcrypt_sha256$" + string(h)
}

// djangoBcrypt: Django's BCryptPasswordHasher.encode with pyca/bcrypt
// before 5.0, which cut the password at 72 bytes.
func djangoBcrypt(t testing.TB, password string, cost int) string {
	p := []byte(password)
	if len(p) > 72 {
		p = p[:72]
	}
	h, err := bcrypt.GenerateFromPassword(p, cost)
	if err != nil {
		t.Fatal(err)
	}
	return "bcrypt$" + string(h)
}

// argon2Encoded: argon2-cffi's encoded hash (the reference
// implementation's), with Django's "argon2" in front when django is set.
func argon2Encoded(django bool, variant, password, salt string, time, memory uint32, threads uint8, keyLen uint32) string {
	key := argon2.IDKey
	if variant == "argon2i" {
		key = argon2.Key
	}
	sum := key([]byte(password), []byte(salt), time, memory, threads, keyLen)
	prefix := ""
	if django {
		prefix = "argon2"
	}
	return fmt.Sprintf("%s$%s$v=19$m=%d,t=%d,p=%d$%s$%s", prefix, variant, memory, time, threads,
		base64.RawStdEncoding.EncodeToString([]byte(salt)), base64.RawStdEncoding.EncodeToString(sum))
}

func literal(t testing.TB, source string) vector {
	t.Helper()
	for _, v := range literalVectors {
		if v.source == source {
			return v
		}
	}
	t.Fatalf("no literal vector %q", source)
	return vector{}
}

// TestReferenceReproducesPublished checks the test's own PBKDF2 and
// formats against the applications' published vectors, so that the vectors
// computed with them below stand for the applications.
func TestReferenceReproducesPublished(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{djangoPBKDF2("not a password", "kjVJaVz6qsnJ", 10000), literal(t, "passlib django_pbkdf2_sha256 (django 1.4)").hash},
		{djangoPBKDF2(upassTable, "bEwAfNrH1TlQ", 10000), literal(t, "passlib django_pbkdf2_sha256 (django 1.4), UPASS_TABLE").hash},
		{passlibPBKDF2SHA512("password", passlibAB64Decode("RHY0Fr3IDMSVO/RSZyb5ow"), 1212), literal(t, "passlib pbkdf2_sha512").hash},
		{passlibPBKDF2SHA512(upassWav, passlibAB64Decode("KkbvoKGsAIcF8IslDR6skQ"), 1212), literal(t, "passlib pbkdf2_sha512, UPASS_WAV").hash},
		{argon2Encoded(true, "argon2i", "secret", "saltsalt", 1, 8, 1, 16), literal(t, "django test_argon2, argon2i").hash},
		{argon2Encoded(true, "argon2i", "password", "somesalt", 1, 256, 1, 16), literal(t, "passlib django_argon2").hash},
	} {
		if tc.got != tc.want {
			t.Errorf("the definition gives\n%s\nthe application wrote\n%s", tc.got, tc.want)
		}
	}
}

// computedVectors are written in the test from each format's definition,
// with passwords and salts of several shapes and cheap costs.
func computedVectors(t testing.TB) []vector {
	var vs []vector
	passwords := []string{letmein, upassTable, "correct horse battery staple", strings.Repeat("é", 100), "$2b$ not a hash"}
	for i, pw := range passwords {
		salt := []string{"seasalt", "kjVJaVz6qsnJ", "YjfeVSy8uKEHDwpdZ7tlbG", "s", "ünïcødé salt"}[i]
		vs = append(vs,
			vector{"definition: Django PBKDF2PasswordHasher", SchemeDjangoPBKDF2SHA256, pw, djangoPBKDF2(pw, salt, 1000+i)},
			vector{"definition: passlib pbkdf2_sha512", SchemePasslibPBKDF2SHA512, pw, passlibPBKDF2SHA512(pw, []byte(salt + "0123456789abcdef")[:16], 1000+i)},
			vector{"definition: Django BCryptSHA256PasswordHasher", SchemeDjangoBcryptSHA256, pw, djangoBcryptSHA256(t, pw, bcrypt.MinCost)},
			vector{"definition: Django BCryptPasswordHasher", SchemeDjangoBcrypt, pw, djangoBcrypt(t, pw, bcrypt.MinCost)},
			vector{"definition: Django Argon2PasswordHasher, argon2id", SchemeDjangoArgon2, pw, argon2Encoded(true, "argon2id", pw, salt+"0123456789abcdef", 1, 64, 1, 16)},
			vector{"definition: Django Argon2PasswordHasher, argon2i", SchemeDjangoArgon2, pw, argon2Encoded(true, "argon2i", pw, salt+"0123456789", 2, 32, 2, 16)},
			vector{"definition: our argon2id, other parameters", SchemeArgon2id, pw, argon2Encoded(false, "argon2id", pw, salt+"01234567", 1, 32, 1, 16)},
		)
	}
	// $2b$ and $2y$ are the same computation as $2a$ for what bcrypt reads.
	b := djangoBcrypt(t, letmein, bcrypt.MinCost)
	vs = append(vs,
		vector{"definition: Django bcrypt, $2y$", SchemeDjangoBcrypt, letmein, strings.Replace(b, "$2a$", "$2y$", 1)},
		vector{"definition: Django bcrypt, $2b$", SchemeDjangoBcrypt, letmein, strings.Replace(b, "$2a$", "$2b$", 1)},
	)
	return vs
}

func mustParse(t testing.TB, hash string) *stored {
	t.Helper()
	s, err := parse(hash)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wrongPasswords are near misses of p.
func wrongPasswords(p string) []string {
	return []string{p + "x", "x" + p, p[:len(p)-1], strings.ToUpper(p), p + " ", "lètmeinz", "secret!"}
}

// TestVectors: each scheme's hash verifies the right password and asks for
// an upgrade, a wrong one fails, and the upgrade then verifies without
// asking again.
func TestVectors(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams, 0)
	vectors := append(append([]vector(nil), literalVectors...), computedVectors(t)...)
	seen := map[string]bool{}
	for _, v := range vectors {
		seen[v.scheme] = true
		t.Run(v.source, func(t *testing.T) {
			if testing.Short() && strings.Contains(v.hash, "m=102400") {
				t.Skip("100 MiB argon2id in -short")
			}
			if got, err := Scheme(v.hash); got != v.scheme || err != nil {
				t.Fatalf("Scheme = %q, %v; want %q", got, err, v.scheme)
			}
			if err := Check(v.hash); err != nil {
				t.Fatalf("Check: %v", err)
			}
			ok, up, err := h.Verify(ctx, v.password, v.hash)
			if !ok || !up || err != nil {
				t.Fatalf("right password: ok=%v needsUpgrade=%v err=%v; want ok, needsUpgrade", ok, up, err)
			}
			wrongs := wrongPasswords(v.password)
			if k := mustParse(t, v.hash).kdf; k.rounds >= 100_000 || k.alg == algBcrypt && k.rounds >= 8 || k.memKiB >= 65536 {
				wrongs = wrongs[:2] // each costs seconds under -race
			}
			for _, w := range wrongs {
				if w == v.password || v.scheme == SchemeDjangoBcrypt && len(w) >= 72 && len(v.password) >= 72 && w[:72] == v.password[:72] {
					continue // the same to Django's bcrypt (TestDjangoBcryptTruncates)
				}
				if ok, up, err := h.Verify(ctx, w, v.hash); ok || up || err != nil {
					t.Errorf("wrong password %q: ok=%v needsUpgrade=%v err=%v", w, ok, up, err)
				}
			}

			// The login that succeeded stores our hash in the legacy one's place.
			upgraded, err := h.Hash(ctx, v.password)
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := Scheme(upgraded); s != SchemeArgon2id {
				t.Fatalf("upgraded hash's scheme is %q", s)
			}
			if ok, up, err := h.Verify(ctx, v.password, upgraded); !ok || up || err != nil {
				t.Fatalf("after the upgrade: ok=%v needsUpgrade=%v err=%v; want ok, no upgrade", ok, up, err)
			}
			if ok, _, _ := h.Verify(ctx, v.password+"x", upgraded); ok {
				t.Fatal("after the upgrade, a wrong password verifies")
			}
		})
	}
	for _, s := range schemes {
		if !seen[s.name] {
			t.Errorf("no vector for %s", s.name)
		}
	}
}

// TestBcryptSHA256DoesNotTruncate: Django's reason for bcrypt_sha256; the
// three passlib vectors share a salt and differ only after 72 characters.
func TestBcryptSHA256DoesNotTruncate(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams, 0)
	for _, v := range []vector{
		literal(t, "passlib django_bcrypt_sha256, 72 characters"),
		literal(t, "passlib django_bcrypt_sha256, 75 characters (qwr)"),
		literal(t, "passlib django_bcrypt_sha256, 75 characters (xyz)"),
	} {
		for _, w := range []string{abc72, abc72 + "qwr", abc72 + "xyz"} {
			ok, _, err := h.Verify(ctx, w, v.hash)
			if err != nil || ok != (w == v.password) {
				t.Errorf("%s with %d characters: ok=%v err=%v", v.source, len(w), ok, err)
			}
		}
	}
}

// TestDjangoBcryptTruncates: Django's bcrypt$ hashed what pyca/bcrypt
// before 5.0 read of the password, its first 72 bytes, so anything that
// agrees on those verifies, as it did in Django.
func TestDjangoBcryptTruncates(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams, 0)
	long := strings.Repeat("0123456789", 10)
	stored := djangoBcrypt(t, long, bcrypt.MinCost)
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{long, true},
		{long[:72], true},
		{long[:72] + "something else", true},
		{long[:71], false},
		{long[:71] + "x", false},
		{strings.Repeat("é", 36), false},
	} {
		if ok, _, err := h.Verify(ctx, tc.p, stored); ok != tc.want || err != nil {
			t.Errorf("%d bytes: ok=%v err=%v, want %v", len(tc.p), ok, err, tc.want)
		}
	}
	// Cut inside a character: bcrypt reads bytes.
	e := strings.Repeat("é", 40) // 80 bytes
	stored = djangoBcrypt(t, e, bcrypt.MinCost)
	if ok, _, _ := h.Verify(ctx, e[:73], stored); !ok {
		t.Error("72 bytes ending inside a character do not verify")
	}
}

// TestHashAndParams: Hash makes a PHC string under its Params that verifies
// without an upgrade under the same Params, and asks for one under others.
func TestHashAndParams(t *testing.T) {
	ctx := context.Background()
	other := Params{MemoryKiB: 128, Time: 3, Threads: 2, KeyLen: 16, SaltLen: 8}
	for _, tc := range []struct {
		p      Params
		prefix string
		saltB  int
	}{
		{testParams, "$argon2id$v=19$m=64,t=1,p=1$", 16},
		{other, "$argon2id$v=19$m=128,t=3,p=2$", 8},
	} {
		a, err := Hash("I love Paris", tc.p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Hash("I love Paris", tc.p)
		if !strings.HasPrefix(a, tc.prefix) || a == b {
			t.Fatalf("Hash = %s and %s: want prefix %s and a random salt", a, b, tc.prefix)
		}
		s, err := parse(a)
		if err != nil || len(s.salt) != tc.saltB || len(s.sum) != int(tc.p.KeyLen) || s.kdf != tc.p.kdf() {
			t.Fatalf("parse(%s) = %+v, %v", a, s, err)
		}
		hp := newHasher(t, tc.p, 0)
		if ok, up, err := hp.Verify(ctx, "I love Paris", a); !ok || up || err != nil {
			t.Errorf("same params: ok=%v needsUpgrade=%v err=%v", ok, up, err)
		}
		otherP := testParams
		if tc.p == testParams {
			otherP = other
		}
		ho := newHasher(t, otherP, 0)
		if ok, up, err := ho.Verify(ctx, "I love Paris", a); !ok || !up || err != nil {
			t.Errorf("other params: ok=%v needsUpgrade=%v err=%v; want ok and needsUpgrade", ok, up, err)
		}
		// Only a right password says needsUpgrade.
		if ok, up, _ := ho.Verify(ctx, "I love Rome", a); ok || up {
			t.Errorf("wrong password: ok=%v needsUpgrade=%v", ok, up)
		}
	}
	// Any salt or key length differing from the Params asks for an upgrade.
	p := testParams
	p.SaltLen = 24
	a, _ := Hash("x", p)
	if ok, up, _ := newHasher(t, testParams, 0).Verify(ctx, "x", a); !ok || !up {
		t.Errorf("24-byte salt under 16-byte Params: ok=%v needsUpgrade=%v", ok, up)
	}

	for _, tc := range []struct{ p, err string }{
		{"", "empty password"},
		{strings.Repeat("a", MaxPasswordBytes+1), "longer than 1024 bytes"},
	} {
		if _, err := Hash(tc.p, testParams); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Hash(%.20q) = %v, want %q", tc.p, err, tc.err)
		}
		if _, err := newHasher(t, testParams, 0).Hash(ctx, tc.p); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Hasher.Hash(%.20q) = %v, want %q", tc.p, err, tc.err)
		}
	}
	if _, err := Hash(strings.Repeat("é", MaxPasswordBytes/2), testParams); err != nil {
		t.Errorf("a password of exactly %d bytes: %v", MaxPasswordBytes, err)
	}
}

// TestDefaultParams makes and checks one hash with the real parameters,
// through the package's Verify, whose current parameters they are.
func TestDefaultParams(t *testing.T) {
	ctx := context.Background()
	a, err := Hash("I love Paris", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %s", a)
	}
	if ok, up, err := Verify(ctx, "I love Paris", a); !ok || up || err != nil {
		t.Fatalf("Verify: ok=%v needsUpgrade=%v err=%v", ok, up, err)
	}
	if ok, _, _ := Verify(ctx, "I love Rome", a); ok {
		t.Fatal("a wrong password verifies")
	}
	cheap, _ := Hash("I love Paris", testParams)
	if ok, up, _ := Verify(ctx, "I love Paris", cheap); !ok || !up {
		t.Fatalf("a hash under other params: ok=%v needsUpgrade=%v", ok, up)
	}
	d, err := parse(defaultHasher().dummy)
	if err != nil || d.kdf != DefaultParams.kdf() {
		t.Fatalf("the dummy for unknown accounts has %+v, %v", d, err)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Params)
		err  string // "" for valid
	}{
		{"default", func(*Params) {}, ""},
		{"test", func(p *Params) { *p = testParams }, ""},
		{"minimum memory", func(p *Params) { p.MemoryKiB, p.Threads = 32, 4 }, ""},
		{"maximum", func(p *Params) { *p = Params{MemoryKiB: 4 << 20, Time: 100, Threads: 255, KeyLen: 128, SaltLen: 64} }, ""},
		{"zero time", func(p *Params) { p.Time = 0 }, "argon2 time 0 is out of range 1 to 100"},
		{"absurd time", func(p *Params) { p.Time = 1000 }, "argon2 time 1000"},
		{"zero memory", func(p *Params) { p.MemoryKiB = 0 }, "argon2 memory 0 KiB is out of range 8 (8 per thread)"},
		{"memory per thread", func(p *Params) { p.MemoryKiB, p.Threads = 31, 4 }, "argon2 memory 31 KiB is out of range 32"},
		{"absurd memory", func(p *Params) { p.MemoryKiB = 4<<20 + 1 }, "argon2 memory 4194305 KiB"},
		{"zero threads", func(p *Params) { p.Threads = 0 }, "argon2 threads 0"},
		{"short key", func(p *Params) { p.KeyLen = 8 }, "argon2 key length 8 is out of range 16 to 128"},
		{"long key", func(p *Params) { p.KeyLen = 1 << 20 }, "argon2 key length 1048576"},
		{"short salt", func(p *Params) { p.SaltLen = 4 }, "argon2 salt length 4 is out of range 8 to 64"},
		{"long salt", func(p *Params) { p.SaltLen = 65 }, "argon2 salt length 65"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams
			tc.edit(&p)
			errs := []error{p.Validate()}
			_, err := NewHasher(p, 0)
			errs = append(errs, err)
			if tc.err != "" { // a valid maximum would really hash 4 GiB 100 times
				_, err = Hash("x", p)
				errs = append(errs, err)
			}
			for _, err := range errs {
				if tc.err == "" && err != nil {
					t.Fatalf("%v", err)
				}
				if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			}
		})
	}
}
