package ticket

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/store"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// testParams keep argon2id cheap in the tests that do not measure it.
var testParams = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}

func newHasher(t testing.TB, p Argon2Params) *Hasher {
	t.Helper()
	h, err := NewHasher(testSecret, p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func generated(t testing.TB) string {
	t.Helper()
	p, err := GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		p := generated(t)
		if len(p) != GeneratedLen || !LooksGenerated(p) {
			t.Fatalf("%q: length %d, LooksGenerated %v", p, len(p), LooksGenerated(p))
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil || len(b) != 16 {
			t.Fatalf("%q decodes to %d bytes, %v", p, len(b), err)
		}
		if seen[p] {
			t.Fatalf("%q generated twice", p)
		}
		seen[p] = true
	}
}

func TestLooksGenerated(t *testing.T) {
	for _, tc := range []struct {
		p    string
		want bool
	}{
		{"AAAAAAAAAAAAAAAAAAAAAA", true},
		{"_-_-_-_-_-_-_-_-_-_-_w", true}, // w = 48: low 4 bits zero
		{"abcdefghijklmnopqrstuQ", true},
		{"0123456789-_ABCDEFGHIg", true},
		{"AAAAAAAAAAAAAAAAAAAAAB", false}, // B = 1: trailing bits set
		{"AAAAAAAAAAAAAAAAAAAAA_", false},
		{"AAAAAAAAAAAAAAAAAAAAA", false},   // 21
		{"AAAAAAAAAAAAAAAAAAAAAAA", false}, // 23
		{"AAAAAAAAAAAAAAAAAAAAA=", false},  // padding
		{"AAAAAAAAAA+AAAAAAAAAAA", false},  // standard alphabet
		{"AAAAAAAAAA/AAAAAAAAAAA", false},
		{"AAAAAAAAAA AAAAAAAAAAA", false},
		{"AAAAAAAAAA\nAAAAAAAAAAA", false},
		{"AAAAAAAAAAAAAAAAAAAAAAAA", false}, // 24: padded std length of 16 bytes
		{"AAAAAAAAAAAAAAAAAAAéA", false},    // 22 bytes, not base64url
		{"I love Paris", false},
		{"", false},
	} {
		if got := LooksGenerated(tc.p); got != tc.want {
			t.Errorf("LooksGenerated(%q) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	ok := DefaultArgon2Params
	for _, tc := range []struct {
		name string
		edit func(*Argon2Params)
		err  string // "" for valid
	}{
		{"default", func(*Argon2Params) {}, ""},
		{"small", func(p *Argon2Params) { *p = testParams }, ""},
		{"minimum memory", func(p *Argon2Params) { p.MemoryKiB, p.Threads = 32, 4 }, ""},
		{"maximum", func(p *Argon2Params) { p.Time, p.MemoryKiB, p.Threads, p.KeyLen, p.SaltLen = 100, 4<<20, 255, 128, 64 }, ""},
		{"zero time", func(p *Argon2Params) { p.Time = 0 }, "argon2 time 0 is out of range 1 to 100"},
		{"absurd time", func(p *Argon2Params) { p.Time = 1000 }, "argon2 time 1000 is out of range"},
		{"zero memory", func(p *Argon2Params) { p.MemoryKiB = 0 }, "argon2 memory_kib 0 is out of range 8 (8 per thread)"},
		{"memory per thread", func(p *Argon2Params) { p.MemoryKiB, p.Threads = 31, 4 }, "argon2 memory_kib 31 is out of range 32"},
		{"absurd memory", func(p *Argon2Params) { p.MemoryKiB = 4<<20 + 1 }, "argon2 memory_kib 4194305 is out of range"},
		{"zero threads", func(p *Argon2Params) { p.Threads = 0 }, "argon2 threads 0"},
		{"zero key", func(p *Argon2Params) { p.KeyLen = 0 }, "argon2 key length 0 is out of range 16 to 128"},
		{"short key", func(p *Argon2Params) { p.KeyLen = 8 }, "argon2 key length 8"},
		{"long key", func(p *Argon2Params) { p.KeyLen = 1 << 20 }, "argon2 key length 1048576"},
		{"zero salt", func(p *Argon2Params) { p.SaltLen = 0 }, "argon2 salt length 0 is out of range 8 to 64"},
		{"negative salt", func(p *Argon2Params) { p.SaltLen = -1 }, "argon2 salt length -1"},
		{"long salt", func(p *Argon2Params) { p.SaltLen = 65 }, "argon2 salt length 65"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			err := p.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate = %v, want %q", err, tc.err)
			}
			if _, err := NewHasher(testSecret, p); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("NewHasher = %v, want %q", err, tc.err)
			}
		})
	}
	if _, err := NewHasher(nil, testParams); err == nil {
		t.Error("NewHasher with no secret: no error")
	}
}

func TestHashGenerated(t *testing.T) {
	h := newHasher(t, testParams)
	p := generated(t)
	hash, err := h.HashGenerated(p)
	if err != nil {
		t.Fatal(err)
	}
	// HMAC-SHA256 under the "ticket" key: not the invite key's, not a plain hash.
	mac := hmac.New(sha256.New, keys.Derive(testSecret, "ticket"))
	mac.Write([]byte(p))
	if !bytes.Equal(hash, mac.Sum(nil)) {
		t.Fatal("keyed hash is not HMAC-SHA256 under keys.Derive(secret, \"ticket\")")
	}
	mac = hmac.New(sha256.New, keys.Derive(testSecret, "invite"))
	mac.Write([]byte(p))
	if bytes.Equal(hash, mac.Sum(nil)) {
		t.Fatal("ticket and invite keys agree")
	}
	if again, _ := h.HashGenerated(p); !bytes.Equal(hash, again) {
		t.Fatal("keyed hash is not deterministic")
	}
	other, err := NewHasher([]byte("another secret, just as long as the first"), testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		h    *Hasher
		p    string
		kind string
		want bool
	}{
		{"right", h, p, KindKeyed, true},
		{"wrong password", h, generated(t), KindKeyed, false},
		{"one character off", h, flipFirst(p), KindKeyed, false},
		{"other secret", other, p, KindKeyed, false},
		{"wrong kind", h, p, KindArgon2id, false},
		{"unknown kind", h, p, "sha1", false},
	} {
		if got := tc.h.Verify(hash, tc.kind, tc.p); got != tc.want {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"", "I love Paris", "AAAAAAAAAAAAAAAAAAAAAB", p + "A"} {
		if _, err := h.HashGenerated(bad); err == nil {
			t.Errorf("HashGenerated(%q): no error", bad)
		}
	}
}

func flipFirst(p string) string {
	if p[0] == 'A' {
		return "B" + p[1:]
	}
	return "A" + p[1:]
}

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashChosen(t *testing.T) {
	h := newHasher(t, testParams)
	for _, p := range []string{
		"I love Paris",
		"Léonard!",
		"пароль билета",
		"🎟 one ticket",
		"AAAAAAAAAAAAAAAAAAAAAB", // 22 base64url characters, but not 16 bytes' spelling
		"AAAAAAAAAAAAAAAAAAAAA",  // 21
		"x",
		strings.Repeat("é", MaxPasswordBytes/2),
	} {
		t.Run(p[:min(len(p), 16)], func(t *testing.T) {
			hash, err := h.HashChosen(p)
			if err != nil {
				t.Fatal(err)
			}
			if !phcPattern.Match(hash) {
				t.Fatalf("hash %q is not a PHC string with the parameters", hash)
			}
			if again, _ := h.HashChosen(p); bytes.Equal(hash, again) {
				t.Fatal("two hashes of one password agree: no random salt")
			}
			if !h.Verify(hash, KindArgon2id, p) {
				t.Fatal("Verify of the right password: false")
			}
			for _, wrong := range []string{p + " ", strings.ToUpper(p), p[:len(p)-1], "I love Rome"} {
				if wrong != p && h.Verify(hash, KindArgon2id, wrong) {
					t.Errorf("Verify(%q): true", wrong)
				}
			}
			if h.Verify(hash, KindKeyed, p) {
				t.Error("Verify as keyed: true")
			}
		})
	}
	for _, tc := range []struct {
		p, err string
	}{
		{"", "empty password"},
		{strings.Repeat("a", MaxPasswordBytes+1), "over the limit of 1024"},
		{generated(t), ErrGeneratedShape.Error()},
		{"AAAAAAAAAAAAAAAAAAAAAA", "reserved for generated passwords"},
		{"L\xe9onard", "not valid UTF-8"},
		{"tab\there", "control character"},
		{"new\nline", "control character"},
		{" leading", "white space"},
		{"trailing ", "white space"},
	} {
		if _, err := h.HashChosen(tc.p); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("HashChosen(%.30q) = %v, want %q", tc.p, err, tc.err)
		}
	}
	if _, err := h.HashChosen(generated(t)); !errors.Is(err, ErrGeneratedShape) {
		t.Errorf("HashChosen(generated) = %v, want ErrGeneratedShape", err)
	}
}

// TestDefaultParams makes and checks one hash with the real parameters.
func TestDefaultParams(t *testing.T) {
	h := newHasher(t, DefaultArgon2Params)
	hash, err := h.HashChosen("I love Paris")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(hash, []byte("$argon2id$v=19$m=19456,t=2,p=1$")) {
		t.Fatalf("hash %q", hash)
	}
	if !h.Check(&store.Ticket{PasswordHash: hash, PasswordKind: KindArgon2id}, "I love Paris") {
		t.Fatal("Check of the right password: false")
	}
	d := h.dummyArgon2
	if d.memory != 19456 || d.time != 2 || d.threads != 1 || len(d.hash) != 32 || len(d.salt) != 16 {
		t.Fatalf("dummy hash for unknown tickets has parameters %+v", d)
	}
}

// TestOtherParams: a hash made under other parameters still verifies after
// the configuration changed, both ways.
func TestOtherParams(t *testing.T) {
	old := newHasher(t, Argon2Params{Time: 3, MemoryKiB: 128, Threads: 2, KeyLen: 16, SaltLen: 8})
	cur := newHasher(t, testParams)
	hash, err := old.HashChosen("Léonard!")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=128,t=3,p=2\$[A-Za-z0-9+/]{11}\$[A-Za-z0-9+/]{22}$`).Match(hash) {
		t.Fatalf("hash %q", hash)
	}
	if !cur.Verify(hash, KindArgon2id, "Léonard!") || cur.Verify(hash, KindArgon2id, "Leonard!") {
		t.Fatal("a hash made under other parameters does not verify under the new ones")
	}
	hash2, _ := cur.HashChosen("Léonard!")
	if !old.Verify(hash2, KindArgon2id, "Léonard!") {
		t.Fatal("the other way round")
	}

	// Hashes made elsewhere: same PHC form, salts and keys of any allowed size.
	salt, key := []byte("saltsaltsalt"), []byte("0123456789abcdef0123")
	p := phc{time: 1, memory: 16, threads: 1, salt: salt}
	p.hash = cur.argon2("I love Paris", p, uint32(len(key)))
	if !cur.Verify(p.encode(), KindArgon2id, "I love Paris") {
		t.Fatalf("%s does not verify", p.encode())
	}
}

func TestParsePHC(t *testing.T) {
	h := newHasher(t, testParams)
	good, err := h.HashChosen("I love Paris")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("parsePHC(%s): %v", good, err)
	}
	parts := strings.Split(string(good), "$")
	salt, sum := parts[4], parts[5]
	for _, bad := range []string{
		"",
		"garbage",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + sum,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + sum,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + sum,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + sum,
		"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + sum,
		"$argon2id$v=19$m=8388608,t=1,p=1$" + salt + "$" + sum, // 8 GiB
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + sum,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + sum + "$",
		"$argon2id$v=19$m=64,t=1,p=1$$" + sum,
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + sum, // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$c2hvcnQ",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + sum[:len(sum)-1] + "B", // trailing bits
	} {
		if _, err := parsePHC([]byte(bad)); err == nil {
			t.Errorf("parsePHC(%q): no error", bad)
		}
		if h.Verify([]byte(bad), KindArgon2id, "I love Paris") {
			t.Errorf("Verify(%q): true", bad)
		}
	}
}

// TestCheckWork proves the timing rule by counting: for each shape of
// password, Check computes the same hashes whatever the ticket is (none, the
// other kind, the right kind with a wrong or right password, a corrupt
// hash).
func TestCheckWork(t *testing.T) {
	h := newHasher(t, testParams)
	gen := generated(t)
	keyedHash, err := h.HashGenerated(gen)
	if err != nil {
		t.Fatal(err)
	}
	const chosen = "I love Paris"
	argonHash, err := h.HashChosen(chosen)
	if err != nil {
		t.Fatal(err)
	}
	oldHash, err := newHasher(t, Argon2Params{Time: 2, MemoryKiB: 32, Threads: 2, KeyLen: 16, SaltLen: 8}).HashChosen(chosen)
	if err != nil {
		t.Fatal(err)
	}
	tickets := []struct {
		name string
		t    *store.Ticket
	}{
		{"unknown uuid", nil},
		{"keyed", &store.Ticket{PasswordHash: keyedHash, PasswordKind: KindKeyed}},
		{"argon2id", &store.Ticket{PasswordHash: argonHash, PasswordKind: KindArgon2id}},
		{"argon2id, old params", &store.Ticket{PasswordHash: oldHash, PasswordKind: KindArgon2id}},
		{"corrupt keyed", &store.Ticket{PasswordHash: []byte("short"), PasswordKind: KindKeyed}},
		{"corrupt argon2id", &store.Ticket{PasswordHash: []byte("$argon2id$junk"), PasswordKind: KindArgon2id}},
		{"unknown kind", &store.Ticket{PasswordHash: keyedHash, PasswordKind: "bcrypt"}},
		{"no kind", &store.Ticket{}},
	}
	type work struct{ hmac, argon2 int64 }
	for _, pw := range []struct {
		shape    string
		password string
		work     work
		opens    string // the ticket it opens
	}{
		{"generated, right", gen, work{1, 0}, "keyed"},
		{"generated, wrong", generated(t), work{1, 0}, ""},
		{"generated, one off", flipFirst(gen), work{1, 0}, ""},
		{"chosen, right", chosen, work{0, 1}, "argon2id"},
		{"chosen, wrong", "I love Rome", work{0, 1}, ""},
		{"chosen, non-ASCII", "Léonard!", work{0, 1}, ""},
		{"almost generated", "AAAAAAAAAAAAAAAAAAAAAB", work{0, 1}, ""},
		{"empty", "", work{0, 0}, ""},
		{"too long", strings.Repeat("x", MaxPasswordBytes+1), work{0, 0}, ""},
	} {
		for _, tk := range tickets {
			h.hmacCalls.Store(0)
			h.argon2Calls.Store(0)
			got := h.Check(tk.t, pw.password)
			w := work{h.hmacCalls.Load(), h.argon2Calls.Load()}
			if w != pw.work {
				t.Errorf("%s, %s: %d HMAC and %d argon2id, want %d and %d", pw.shape, tk.name, w.hmac, w.argon2, pw.work.hmac, pw.work.argon2)
			}
			want := tk.name == pw.opens || (pw.opens == "argon2id" && tk.name == "argon2id, old params")
			if got != want {
				t.Errorf("%s, %s: Check = %v, want %v", pw.shape, tk.name, got, want)
			}
			if tk.t != nil {
				h.hmacCalls.Store(0)
				h.argon2Calls.Store(0)
				if h.Verify(tk.t.PasswordHash, tk.t.PasswordKind, pw.password) != got {
					t.Errorf("%s, %s: Verify and Check disagree", pw.shape, tk.name)
				}
				if vw := (work{h.hmacCalls.Load(), h.argon2Calls.Load()}); vw != pw.work {
					t.Errorf("%s, %s: Verify did %+v, want %+v", pw.shape, tk.name, vw, pw.work)
				}
			}
		}
	}
}

func BenchmarkCheckKeyed(b *testing.B) {
	h := newHasher(b, DefaultArgon2Params)
	p := generated(b)
	hash, err := h.HashGenerated(p)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		t    *store.Ticket
		p    string
	}{
		{"right", &store.Ticket{PasswordHash: hash, PasswordKind: KindKeyed}, p},
		{"wrong", &store.Ticket{PasswordHash: hash, PasswordKind: KindKeyed}, generated(b)},
		{"unknown", nil, p},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if h.Check(bc.t, bc.p) != (bc.name == "right") {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

func BenchmarkCheckArgon2id(b *testing.B) {
	for _, params := range []Argon2Params{DefaultArgon2Params} {
		h := newHasher(b, params)
		const p = "I love Paris"
		hash, err := h.HashChosen(p)
		if err != nil {
			b.Fatal(err)
		}
		for _, bc := range []struct {
			name string
			t    *store.Ticket
			p    string
		}{
			{"right", &store.Ticket{PasswordHash: hash, PasswordKind: KindArgon2id}, p},
			{"wrong", &store.Ticket{PasswordHash: hash, PasswordKind: KindArgon2id}, "I love Rome"},
			{"unknown", nil, p},
		} {
			b.Run(fmt.Sprintf("m=%d,t=%d,p=%d/%s", params.MemoryKiB, params.Time, params.Threads, bc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if h.Check(bc.t, bc.p) != (bc.name == "right") {
						b.Fatal("wrong answer")
					}
				}
			})
		}
	}
}
