package password

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Valid hashes the malformed ones below are made from.
const (
	okPBKDF2   = "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="
	okArgon2   = "argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q"
	okBcrypt   = "bcrypt$$2a$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG"
	okBcryptSH = "bcrypt_sha256$$2a$06$kCXUnRFQptGg491siDKNTu8RxjBGSjALHRuvhPYNFsa4Ea5d9M48u"
	okPasslib  = "$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww"
	okOurs     = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$BiS6Rv0jJ5ZlJjNL1uoyT5M9y4chXhKCKqL6ZKCyUxs"
)

// malformedHashes are refused by Check, each for the reason given.
var malformedHashes = []struct {
	hash string
	kind error
	err  string
}{
	// Unknown schemes: the error names the prefix, never the rest.
	{"", ErrUnknownScheme, "the hash is empty"},
	{"md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3", ErrUnknownScheme, `scheme "md5$"`},
	{"sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b", ErrUnknownScheme, `scheme "sha1$"`},
	{"88a434c88cca4e900f7874cd98123f43", ErrUnknownScheme, "no $-separated prefix naming its scheme (32 bytes)"},
	{"pbkdf2_sha1$390000$seasalt2$aDapRanzW8aHTz97v2TcfHzWD+I=", ErrUnknownScheme, `scheme "pbkdf2_sha1$"`},
	{"scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw==", ErrUnknownScheme, `scheme "scrypt$"`},
	{"$2b$12$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrUnknownScheme, `scheme "$2b$"`},
	{"$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ", ErrUnknownScheme, `scheme "$pbkdf2-sha256$"`},
	{"$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrUnknownScheme, `scheme "$argon2i$"`},
	{"PBKDF2_SHA256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrUnknownScheme, `scheme "PBKDF2_SHA256$"`},
	{" " + okPBKDF2, ErrUnknownScheme, "prefix is not a scheme name (14 bytes before the first $)"},
	{strings.Repeat("x", 40) + "$rest", ErrUnknownScheme, "prefix is not a scheme name (40 bytes before the first $)"},
	{"!Qj3PPyRjSJIebHnG81TMjsqtaIGxNQGaEBNYafTJ7", ErrUnusablePassword, "unusable password"},

	// Django pbkdf2_sha256.
	{"pbkdf2_sha256$", ErrMalformedHash, "found 1 $-separated fields, want 3"},
	{"pbkdf2_sha256$390000$seasalt", ErrMalformedHash, "found 2 $-separated fields"},
	{okPBKDF2 + "$", ErrMalformedHash, "found 4 $-separated fields"},
	{"pbkdf2_sha256$0390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "iterations are not a decimal number"},
	{"pbkdf2_sha256$+390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "iterations are not a decimal number"},
	{"pbkdf2_sha256$ 390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "iterations are not a decimal number"},
	{"pbkdf2_sha256$$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "iterations are not a decimal number"},
	{"pbkdf2_sha256$99999999999$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "iterations are not a decimal number"},
	{"pbkdf2_sha256$0$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "0 iterations are out of range 1 to 10000000"},
	{"pbkdf2_sha256$10000001$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "10000001 iterations are out of range"},
	{"pbkdf2_sha256$390000$$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "empty salt"},
	{"pbkdf2_sha256$390000$sea\xffsalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "salt is not UTF-8 text"},
	{"pbkdf2_sha256$390000$" + strings.Repeat("s", 300) + "$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "salt is 300 bytes, over the limit of 256"},
	{"pbkdf2_sha256$390000$" + strings.Repeat("s", 1000) + "$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "1066 bytes, over the limit of 1024"},
	{"pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c", ErrMalformedHash, "hash is not padded base64 (43 characters)"},
	{"pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7d=", ErrMalformedHash, "hash is not padded base64"}, // unused bits set
	{"pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0\nuuAuAnKgC45eudxro7c=", ErrMalformedHash, "hash is not padded base64"},
	{"pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ-92hWPxi5ww0uuAuAnKgC45eudxro7c=", ErrMalformedHash, "hash is not padded base64"},
	{"pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuA=", ErrMalformedHash, "hash is 20 bytes, want 32 (the pbkdf2-sha256 output)"},

	// Django argon2, and our own argon2id.
	{"argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg",
		ErrMalformedHash, "argon2 version 16 (1.0)"}, // Django's test_argon2, "old hashes without version attribute"
	{"argon2$argon2i$v=16$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 version 16 is not supported, only 19"},
	{"argon2$argon2i$v=019$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "not v=<version>"},
	{"argon2$argon2i$x=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "not v=<version>"},
	{"argon2$argon2d$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "variant argon2d is not supported"},
	{"argon2$argon2x$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "unknown argon2 variant"},
	{"argon2$$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "found 6 $-separated fields, want 5"},
	{okArgon2 + "$", ErrMalformedHash, "found 6 $-separated fields"},
	{"argon2$argon2i$v=19$m=8,t=1,p=1$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "found 4 $-separated fields"},
	{"argon2$argon2i$v=19$t=1,m=8,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "parameters: want m=<KiB>,t=<passes>,p=<lanes>, in that order"},
	{"argon2$argon2i$v=19$m=8,t=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "parameters"},
	{"argon2$argon2i$v=19$m=8,t=1,p=1,k=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "parameters"},
	{"argon2$argon2i$v=19$m=08,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "parameters"},
	{"argon2$argon2i$v=19$m=8,t=-1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "parameters"},
	{"argon2$argon2i$v=19$m=8,t=0,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 time 0 is out of range 1 to 100"},
	{"argon2$argon2i$v=19$m=8,t=101,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 time 101 is over the limit of 100"},
	{"argon2$argon2i$v=19$m=8,t=1,p=0$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 threads 0"},
	{"argon2$argon2i$v=19$m=8,t=1,p=256$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 threads 256 is over the limit of 255"},
	{"argon2$argon2i$v=19$m=4,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 memory 4 KiB is out of range 8"},
	{"argon2$argon2i$v=19$m=8,t=1,p=2$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 memory 8 KiB is out of range 16 (8 per thread)"},
	{"argon2$argon2i$v=19$m=8388608,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 memory 8388608 KiB is over the limit of 4194304"},
	{"argon2$argon2i$v=19$m=9999999999,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 memory 9999999999 KiB is over the limit"},
	{"argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdA$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "argon2 salt length 4 is out of range 8 to 64"},
	{"argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ=$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "salt is not unpadded base64 (12 characters)"},
	{"argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHR$YC9+jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "salt is not unpadded base64"}, // unused bits set
	{"argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8R", ErrMalformedHash, "hash is not unpadded base64"},
	{"argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5Rw", ErrMalformedHash, "argon2 key length 10 is out of range 16 to 128"},
	{"argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9_jJCrQhs5R6db7LlN8Q", ErrMalformedHash, "hash is not unpadded base64"},
	{"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$BiS6Rv0jJ5ZlJjNL1uoyT5M9y4chXhKCKqL6ZKCyUxs$", ErrMalformedHash, "argon2id: want $<variant>$v=19"},
	{"$argon2id$v=19$m=64,t=1,p=1$$BiS6Rv0jJ5ZlJjNL1uoyT5M9y4chXhKCKqL6ZKCyUxs", ErrMalformedHash, "argon2 salt length 0"},
	{"$argon2id$junk", ErrMalformedHash, "found 2 $-separated fields"},

	// Django bcrypt and bcrypt_sha256.
	{"bcrypt$", ErrMalformedHash, "found 0 characters"},
	{"bcrypt$$2a$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHja", ErrMalformedHash, "found 59 characters"},
	{okBcrypt + "G", ErrMalformedHash, "found 61 characters"},
	{"bcrypt_sha256$xyz$2a$06$/3OeRpbOf8/l6nPPRdZPp.nRiyYqPobEZGdNRBWihQhiFDh1ws1tu", ErrMalformedHash, "found 63 characters"}, // passlib's "data in django salt field"
	{"bcrypt$$2$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaGG", ErrMalformedHash, "want $2b$<cost>$"},
	{"bcrypt$$2x$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "variant $2x$"},
	{"bcrypt$$2c$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "unknown bcrypt variant"},
	{"bcrypt$$3a$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "want $2b$<cost>$"},
	{"bcrypt$$2a$5a$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "cost is not two decimal digits"},
	{"bcrypt$$2a$03$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "cost 3 is out of range 4 to 16"},
	{"bcrypt$$2a$17$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "cost 17 is out of range"},
	{"bcrypt$$2a$31$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "cost 31 is out of range"},
	{"bcrypt$$2a$05$Z17AXnnlpzddNUvnC6cZNPSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "salt is not 22 characters of bcrypt's base64"}, // unused bits set
	{"bcrypt$$2a$05$Z17AXnnlpzddNUvn!6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "salt is not 22 characters"},
	{"bcrypt$$2a$05$Z17AXnnlpzddNUvn+6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG", ErrMalformedHash, "salt is not 22 characters"},
	{"bcrypt$$2a$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaH", ErrMalformedHash, "hash is not 31 characters of bcrypt's base64"}, // unused bits set
	{"bcrypt$$2a$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfuc\nQlHjaG", ErrMalformedHash, "hash is not 31 characters"},
	{"bcrypt_sha256$$2a$06$kCXUnRFQptGg491siDKNTu8RxjBGSjALHRuvhPYNFsa4Ea5d9M48", ErrMalformedHash, "django_bcrypt_sha256: want $2b$<cost>$"},

	// passlib pbkdf2_sha512.
	{"$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow", ErrMalformedHash, "found 2 $-separated fields"},
	{"$pbkdf2-sha512$01212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww", ErrMalformedHash, "iterations are not a decimal number without leading zeros"}, // passlib's "zero padded rounds field"
	{"$pbkdf2-sha512$0$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww", ErrMalformedHash, "0 iterations are out of range"},
	{"$pbkdf2-sha512$1212$$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww", ErrMalformedHash, "empty salt"},
	{"$pbkdf2-sha512$1212$RHY0Fr3IDMSVO+RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww", ErrMalformedHash, "salt is not passlib's adapted base64 (22 characters)"},
	{"$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow==$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww", ErrMalformedHash, "salt is not passlib's adapted base64"},
	{"$pbkdf2-sha512$1212$" + strings.Repeat("A", 400) + "$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww", ErrMalformedHash, "salt is 300 bytes, over the limit of 256"},
	{"$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGwx", ErrMalformedHash, "checksum is not passlib's adapted base64"}, // unused bits set
	{"$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gB", ErrMalformedHash, "hash is 60 bytes, want 64 (the pbkdf2-sha512 output)"},
	{"$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK+eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww", ErrMalformedHash, "checksum is not passlib's adapted base64"},
}

// secretFields are the parts of a hash an error must not show: its
// '$'-separated fields long enough to be a salt or a hash, other than the
// prefix (which an unknown scheme's error names), scheme names, numbers and
// argon2's parameters.
func secretFields(hash string) []string {
	var out []string
	for i, f := range strings.Split(hash, "$") {
		if i == 0 && strings.Contains(hash, "$") || len(f) < 8 || strings.HasPrefix(f, "m=") || strings.Trim(f, "0123456789") == "" {
			continue
		}
		switch f {
		case "bcrypt_sha256", "pbkdf2-sha512", "argon2id", "pbkdf2-sha256":
			continue
		}
		out = append(out, f)
	}
	return out
}

func TestCheckRefuses(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, testParams, 0)
	for _, tc := range malformedHashes {
		err := Check(tc.hash)
		if err == nil || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Check(%.60q) = %v\nwant %v containing %q", tc.hash, err, tc.kind, tc.err)
			continue
		}
		for _, f := range secretFields(tc.hash) {
			if strings.Contains(err.Error(), f) {
				t.Errorf("Check(%.60q): the error %q shows %q", tc.hash, err, f)
			}
		}
		// Verify refuses it with the same reason (after the work of a
		// wrong password: TestVerifyWork).
		ok, up, verr := h.Verify(ctx, "lètmein", tc.hash)
		if ok || up || verr == nil || verr.Error() != err.Error() {
			t.Errorf("Verify(%.60q) = %v, %v, %v; want Check's error", tc.hash, ok, up, verr)
		}
	}
}

func TestCheckAccepts(t *testing.T) {
	for _, hash := range []string{okPBKDF2, okArgon2, okBcrypt, okBcryptSH, okPasslib, okOurs} {
		if err := Check(hash); err != nil {
			t.Errorf("Check(%s): %v", hash, err)
		}
	}
	// Bounds are inclusive.
	for _, hash := range []string{
		"pbkdf2_sha256$1$s$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
		"pbkdf2_sha256$10000000$s$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
		"pbkdf2_sha256$1$" + strings.Repeat("é", 128) + "$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
		"bcrypt$$2b$04$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG",
		"bcrypt$$2y$16$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG",
		"argon2$argon2id$v=19$m=4194304,t=100,p=255$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
	} {
		if err := Check(hash); err != nil {
			t.Errorf("Check(%.70s): %v", hash, err)
		}
	}
}

func TestScheme(t *testing.T) {
	for _, tc := range []struct{ hash, want string }{
		{okOurs, SchemeArgon2id},
		{okPBKDF2, SchemeDjangoPBKDF2SHA256},
		{okArgon2, SchemeDjangoArgon2},
		{okBcryptSH, SchemeDjangoBcryptSHA256},
		{okBcrypt, SchemeDjangoBcrypt},
		{okPasslib, SchemePasslibPBKDF2SHA512},
		// The prefix alone names the scheme; Check judges the rest.
		{"bcrypt$garbage", SchemeDjangoBcrypt},
		{"argon2$argon2d$", SchemeDjangoArgon2},
	} {
		if got, err := Scheme(tc.hash); got != tc.want || err != nil {
			t.Errorf("Scheme(%.30s) = %q, %v; want %q", tc.hash, got, err, tc.want)
		}
	}
	for _, tc := range malformedHashes {
		if errors.Is(tc.kind, ErrUnknownScheme) || errors.Is(tc.kind, ErrUnusablePassword) {
			if got, err := Scheme(tc.hash); got != "" || !errors.Is(err, ErrUnknownScheme) || !errors.Is(err, tc.kind) {
				t.Errorf("Scheme(%.30q) = %q, %v", tc.hash, got, err)
			}
		}
	}
}

// TestEncodeIsIdentity: a hash that parses is the one spelling of what was
// parsed (FuzzCheck holds every input to this).
func TestEncodeIsIdentity(t *testing.T) {
	var hashes []string
	for _, v := range append(literalVectors, computedVectors(t)...) {
		hashes = append(hashes, v.hash)
	}
	for _, hash := range hashes {
		s, err := parse(hash)
		if err != nil {
			t.Fatalf("parse(%s): %v", hash, err)
		}
		if got := s.encode(); got != hash {
			t.Errorf("parse then encode:\n%s\nwant\n%s", got, hash)
		}
	}
}
