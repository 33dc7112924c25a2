package ops_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/password"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// Legacy hashes as the applications wrote them (the literal vectors of
// internal/password, from Django's and passlib's test suites).
const (
	hashPBKDF2       = "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="
	hashArgon2       = "argon2$argon2id$v=19$m=102400,t=2,p=8$Y041dExhNkljRUUy$TMa6A8fPJhCAUXRhJXCXdw"
	hashBcryptSHA256 = "bcrypt_sha256$$2a$08$NDjSAIcas.EcoxCRiArvT.MkNiPYVhrsrnJsRkLueZOoV1bsQqlmC"
	hashBcrypt       = "bcrypt$$2a$10$fVH8e28OQRj9tqiDXs1e1uxpsjN0c7II7YPKXua2NAKYvM6iQk7dq"
	hashPasslib      = "$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww"
	hashUnusable     = "!fjkdYw9GqJCvqS0zBDDnTqIPBR7eIL6i2GzCezfh" // Django's set_unusable_password
)

func ourHash(t *testing.T) string {
	t.Helper()
	h, err := password.Hash("secret", password.Params{MemoryKiB: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// wantUser is what an imported user should be.
type wantUser struct {
	site, email, name, phone, hash string
	roles                          []string
}

func checkUsers(t *testing.T, o *ops.Ops, want []wantUser) {
	t.Helper()
	us, err := o.Store.Users(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != len(want) {
		t.Fatalf("%d users, want %d: %+v", len(us), len(want), us)
	}
	for i, w := range want {
		u := us[i]
		var roles []string
		for _, r := range u.Roles {
			roles = append(roles, r.String())
		}
		if u.Site != w.site || u.Email != w.email || u.Name != w.name || u.Phone != w.phone || u.PasswordHash != w.hash ||
			!u.Active || fmt.Sprint(roles) != fmt.Sprint(w.roles) {
			t.Errorf("user %d: %q %q %q %q hash %q active %t roles %v;\nwant %+v", i, u.Site, u.Email, u.Name, u.Phone, u.PasswordHash, u.Active, roles, w)
		}
	}
}

func TestImportUsers(t *testing.T) {
	argon2id := ourHash(t)
	allSchemes := map[string]int{
		password.SchemeDjangoPBKDF2SHA256: 1, password.SchemeDjangoArgon2: 1, password.SchemeDjangoBcryptSHA256: 1,
		password.SchemeDjangoBcrypt: 1, password.SchemePasslibPBKDF2SHA512: 1, password.SchemeArgon2id: 1,
	}
	wantAll := []wantUser{
		{"app.example.org", "ada@example.com", "Ada, Countess of Lovelace", "+44 1", hashPBKDF2, []string{"admin@app.example.org", "staff@app.example.org"}},
		{"wiki.example.org", "bob@example.com", "", "", hashArgon2, []string{"viewer@app.example.org", "editor@wiki.example.org"}},
		{"app.example.org", "cy@example.com", "", "", hashBcryptSHA256, nil},
		{"app.example.org", "di@example.com", "", "", hashBcrypt, nil},
		{"app.example.org", "eve@example.com", "Eve", "", hashPasslib, nil},
		{"app.example.org", "fay@example.com", "", "", argon2id, nil},
		{"app.example.org", "gus@example.com", "", "", "", nil},
		{"", "hal@example.com", "", "", "", []string{"staff@app.example.org"}},
	}
	tests := []struct {
		name, format, site, file string
	}{
		{"jsonl", ops.ImportJSONL, "App.Example.org", strings.Join([]string{
			`{"email": "Ada@Example.com", "name": " Ada, Countess of Lovelace ", "phone": "+44 1", "roles": ["staff", "admin", "staff"], "password_hash": "` + hashPBKDF2 + `"}`,
			``,
			`{"email": "bob@example.com", "site": "wiki.example.org", "roles": ["editor", "viewer@app.example.org"], "password_hash": "` + hashArgon2 + `"}`,
			`{"email": "cy@example.com", "password_hash": "` + hashBcryptSHA256 + `"}`,
			`  {"email": "di@example.com", "password_hash": "` + hashBcrypt + `"}  `,
			`{"email": "eve@example.com", "name": "Eve", "roles": [], "password_hash": "` + hashPasslib + `"}`,
			`{"email": "fay@example.com", "password_hash": "` + strings.ReplaceAll(argon2id, "$", `\u0024`) + `"}`,
			`{"email": "gus@example.com", "password_hash": "` + hashUnusable + `"}`,
			// A user known on every site: given no site in a file whose
			// default is one, it gets the default.
		}, "\n") + "\n"},
		{"csv", ops.ImportCSV, "app.example.org", "\uFEFFpassword_hash,Email,name,phone,roles,site\r\n" + strings.Join([]string{
			hashPBKDF2 + `,ada@example.com,"Ada, Countess of Lovelace",+44 1,staff;admin,`,
			`"` + hashArgon2 + `",bob@example.com,,,editor; viewer@app.example.org,wiki.example.org`,
			hashBcryptSHA256 + `,cy@example.com,,,,`,
			``,
			hashBcrypt + `,di@example.com,,,,`,
			`"` + hashPasslib + `",eve@example.com,Eve,,,`,
			`"` + argon2id + `",fay@example.com,,,,`, // argon2's m=…,t=…,p=… hold commas
			hashUnusable + `,gus@example.com,,,,`,
		}, "\r\n") + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOps(t)
			ctx := context.Background()
			res, err := o.ImportUsers(ctx, strings.NewReader(tt.file), tt.format, tt.site, false)
			if err != nil {
				t.Fatal(err)
			}
			want := ops.ImportResult{Rows: 7, Imported: 7, Schemes: allSchemes, WithoutPassword: 1}
			if !reflect.DeepEqual(res, want) {
				t.Errorf("result %+v, want %+v", res, want)
			}
			checkUsers(t, o, wantAll[:7])
			defs, err := o.Store.RoleDefs(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range defs {
				names = append(names, d.Name+"@"+d.Site)
			}
			if got := fmt.Sprint(names); got != "[admin@app.example.org staff@app.example.org viewer@app.example.org editor@wiki.example.org]" {
				t.Errorf("role definitions %s", got)
			}
		})
	}
}

// TestImportNoSite: with no default site, a row without one is a user known
// on every site, whose roles name their site.
func TestImportNoSite(t *testing.T) {
	o := newOps(t)
	res, err := o.ImportUsers(context.Background(), strings.NewReader(`{"email":"hal@example.com","roles":["staff@App.example.org"]}`), ops.ImportJSONL, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 1 || res.WithoutPassword != 1 {
		t.Errorf("result %+v", res)
	}
	checkUsers(t, o, []wantUser{{"", "hal@example.com", "", "", "", []string{"staff@app.example.org"}}})
}

// TestImportRefused: one bad row refuses the whole file, and the error
// lists every bad line with its reason, never a hash.
func TestImportRefused(t *testing.T) {
	tests := []struct {
		name, format, file string
		want               []ops.ImportLineError
	}{
		{"jsonl", ops.ImportJSONL, strings.Join([]string{
			`{"email": "ok@example.com", "password_hash": "` + hashPBKDF2 + `"}`,
			`{"email": "not an address", "password_hash": "` + hashPBKDF2 + `"}`,
			`{"email": "bad-role@example.com", "roles": ["Admin"]}`,
			`{"email": "bad-hash@example.com", "password_hash": "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c"}`,
			`{"email": "OK@example.com"}`,
			`{"email": "md5@example.com", "password_hash": "md5$seasalt$0123456789abcdef0123456789abcdef"}`,
			`{"email": "x@example.com", "password": "hunter2"}`,
			`["x@example.com"]`,
			`{"email": "y@example.com", "roles": "staff"}`,
			`{"email": "z@example.com"`,
			`{"name": "No Address"}`,
			`{"email": "` + hashPasslib + `"}`,
			`{"email": "nobody-site@example.com", "site": "", "roles": ["staff"]}`,
		}, "\n"), []ops.ImportLineError{
			{2, `email "not an address" is not an email address`},
			{3, `role "Admin" must be lower-case letters, digits, '-' or '_'`},
			{4, "password_hash: malformed password hash: django_pbkdf2_sha256"},
			{5, "ok@example.com on site \"\" is also on line 1"},
			{6, "password_hash: unknown password hash scheme"},
			{7, `unknown field "password"; the fields are email, name, phone, site, roles, password_hash`},
			{8, "not a JSON object"},
			{9, "roles: want an array of strings"},
			{10, "not valid JSON"},
			{11, "no email"},
			{12, "email is not an email address"},
			{13, `role "staff": a user known on every site holds roles per site`},
		}},
		{"csv", ops.ImportCSV, strings.Join([]string{
			"email,roles,password_hash",
			"ok@example.com,staff@app.example.org," + hashBcrypt,
			"bad@@example.com,,",
			`"quoted, with a comma@example.com",,`,
			"bad-role@example.com,a b@app.example.org,",
			"bad-hash@example.com,,bcrypt$$2b$03$" + strings.Repeat("a", 53),
			"too-few@example.com,",
			`"multi`,
			`line@example.com",,`,
			"ok@example.com,,",
		}, "\n") + "\n", []ops.ImportLineError{
			{3, `email "bad@@example.com" is not an email address`},
			{4, `email "quoted, with a comma@example.com" is not an email address`},
			{5, `role "a b" must be`},
			{6, "password_hash: malformed password hash: django_bcrypt"},
			{7, "2 fields, want 3 as in the header"},
			{8, `email "multi\nline@example.com" is not an email address`},
			{10, "ok@example.com on site \"\" is also on line 2"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOps(t)
			ctx := context.Background()
			for _, dry := range []bool{true, false} {
				_, err := o.ImportUsers(ctx, strings.NewReader(tt.file), tt.format, "", dry)
				var ie *ops.ImportError
				if !errors.As(err, &ie) {
					t.Fatalf("dry run %t: error %v, want an ImportError", dry, err)
				}
				if len(ie.Lines) != len(tt.want) {
					t.Errorf("dry run %t: bad lines\n%v\nwant %d", dry, err, len(tt.want))
				}
				for i := range min(len(ie.Lines), len(tt.want)) {
					g, w := ie.Lines[i], tt.want[i]
					if g.Line != w.Line || !strings.HasPrefix(g.Reason, w.Reason) {
						t.Errorf("dry run %t: bad line %d: %+v, want line %d: %q…", dry, i, g, w.Line, w.Reason)
					}
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, fmt.Sprintf("nothing imported: %d bad lines\n  line ", len(tt.want))) {
					t.Errorf("error %q", msg)
				}
				for _, secret := range []string{"seasalt", "8xBlGd3", "fVH8e28", "aaaaaaaa", "RHY0Fr3", "0123456789abcdef", "hunter2"} {
					if strings.Contains(msg, secret) {
						t.Errorf("the error shows %q:\n%s", secret, msg)
					}
				}
			}
			us, err := o.Store.Users(ctx)
			if err != nil || len(us) != 0 {
				t.Errorf("a refused import wrote users: %+v %v", us, err)
			}
			defs, err := o.Store.RoleDefs(ctx, "")
			if err != nil || len(defs) != 0 {
				t.Errorf("a refused import wrote roles: %+v %v", defs, err)
			}
		})
	}
}

// TestImportExistingAndDryRun: a user who exists on the row's site is
// skipped and left as it was; a dry run counts the same and writes nothing.
func TestImportExistingAndDryRun(t *testing.T) {
	o := newOps(t)
	ctx := context.Background()
	if _, err := o.AddUser(ctx, ops.NewUser{Email: "ada@example.com", Name: "Ada", Site: "app.example.org"}); err != nil {
		t.Fatal(err)
	}
	file := strings.Join([]string{
		`{"email": "ADA@example.com", "name": "Other", "roles": ["admin"], "password_hash": "` + hashPBKDF2 + `"}`,
		`{"email": "ada@example.com", "site": "wiki.example.org", "password_hash": "` + hashBcrypt + `"}`,
		`{"email": "bob@example.com", "roles": ["staff"], "password_hash": "` + hashPBKDF2 + `"}`,
	}, "\n")
	want := ops.ImportResult{DryRun: true, Rows: 3, Imported: 2, SkippedExisting: 1,
		Schemes: map[string]int{password.SchemeDjangoPBKDF2SHA256: 1, password.SchemeDjangoBcrypt: 1}}
	res, err := o.ImportUsers(ctx, strings.NewReader(file), ops.ImportJSONL, "app.example.org", true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("dry run: %+v, want %+v", res, want)
	}
	ada := wantUser{"app.example.org", "ada@example.com", "Ada", "", "", nil}
	checkUsers(t, o, []wantUser{ada})
	if defs, err := o.Store.RoleDefs(ctx, ""); err != nil || len(defs) != 0 {
		t.Errorf("a dry run made roles: %+v %v", defs, err)
	}

	want.DryRun = false
	for i := range 2 {
		res, err = o.ImportUsers(ctx, strings.NewReader(file), ops.ImportJSONL, "app.example.org", false)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("import %d: %+v, want %+v", i, res, want)
		}
		checkUsers(t, o, []wantUser{
			ada,
			{"wiki.example.org", "ada@example.com", "", "", hashBcrypt, nil},
			{"app.example.org", "bob@example.com", "", "", hashPBKDF2, []string{"staff@app.example.org"}},
		})
		// Run again, everyone exists.
		want = ops.ImportResult{Rows: 3, SkippedExisting: 3, Schemes: map[string]int{}}
	}
}

func TestImportLimits(t *testing.T) {
	o := newOps(t)
	ctx := context.Background()
	long := `{"email": "a@example.com", "name": "` + strings.Repeat("x", ops.MaxImportLineBytes) + `"}`
	for _, tt := range []struct{ format, file, want string }{
		{ops.ImportJSONL, `{"email": "a@example.com"}` + "\n" + long + "\n", "line 2: longer than 65536 bytes"},
		{ops.ImportCSV, "email,name\na@example.com,\"" + strings.Repeat("x", ops.MaxImportLineBytes) + "\"\n", "line 2: longer than 65536 bytes"},
		{ops.ImportCSV, "email,name\na@example.com,\"x\n", "line 2: extraneous or missing \" in quoted-field"},
		{ops.ImportCSV, "email,password\n", `line 1: unknown column "password"`},
		{ops.ImportCSV, "name\n", "line 1: no email column"},
		{ops.ImportCSV, "", "the file holds no users"},
		{ops.ImportJSONL, "\n\n", "the file holds no users"},
		{"xml", "", `import format "xml"`},
	} {
		_, err := o.ImportUsers(ctx, strings.NewReader(tt.file), tt.format, "", false)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s %.40q: %v, want %q", tt.format, tt.file, err, tt.want)
		}
	}
	if us, _ := o.Store.Users(ctx); len(us) != 0 {
		t.Errorf("users written: %+v", us)
	}
}

func TestImportFormat(t *testing.T) {
	for _, tt := range []struct{ path, asked, want string }{
		{"users.jsonl", "", "jsonl"},
		{"users.JSON", "", "jsonl"},
		{"/tmp/users.csv", "", "csv"},
		{"users.csv", "jsonl", "jsonl"},
		{"-", "CSV", "csv"},
		{"users.txt", "", ""},
		{"users.csv", "xml", ""},
	} {
		got, err := ops.ImportFormat(tt.path, tt.asked)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("ImportFormat(%q, %q) = %q, %v; want %q", tt.path, tt.asked, got, err, tt.want)
		}
	}
}

// TestUserJSONScheme: a user's JSON names the scheme of its hash, never the
// hash.
func TestUserJSONScheme(t *testing.T) {
	for hash, want := range map[string]string{"": "", hashPasslib: "passlib_pbkdf2_sha512", "md5$x$y": "unknown"} {
		j := ops.ToUserJSON(&store.User{Email: "a@example.com", PasswordHash: hash})
		if j.PasswordScheme != want {
			t.Errorf("%q: scheme %q, want %q", hash, j.PasswordScheme, want)
		}
	}
}
