package ticket

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

const (
	testUUID  = "0f8fad5b-d9cb-469f-a165-70867728950e"
	secretPW  = "S3cretPassw0rdXYZabcdQ" // generated-looking, easy to search for
	formType  = "application/x-www-form-urlencoded"
	bigFormKB = 70
)

// req builds a server-side request as net/http would hand it over.
func req(method, target string, header map[string]string, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	for k, v := range header {
		r.Header.Add(k, v)
	}
	return r
}

func chunked(r *http.Request) *http.Request {
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	r.Header.Del("Content-Length")
	return r
}

func TestFromRequest(t *testing.T) {
	form := map[string]string{"Content-Type": formType}
	big := "a=" + strings.Repeat("x", bigFormKB<<10) + "&uuid=" + testUUID + "&password=" + secretPW
	for _, tc := range []struct {
		name  string
		r     *http.Request
		names Names
		want  Credentials
		found bool
		err   string
	}{
		{name: "nothing", r: req("GET", "/p?a=1", nil, "")},
		{name: "other authorization", r: req("GET", "/p", map[string]string{"Authorization": "Bearer abc:def"}, "")},
		{name: "scheme prefix only", r: req("GET", "/p", map[string]string{"Authorization": "Tickets " + testUUID + ":x"}, "")},
		{
			name: "header", r: req("GET", "/p", map[string]string{"Authorization": "Ticket " + testUUID + ":" + secretPW}, ""),
			want: Credentials{testUUID, secretPW, FromHeader}, found: true,
		},
		{
			name: "header scheme case, upper-case uuid, colons and spaces in the password",
			r:    req("GET", "/p", map[string]string{"Authorization": "tICKET   " + strings.ToUpper(testUUID) + ":I love: Paris"}, ""),
			want: Credentials{testUUID, "I love: Paris", FromHeader}, found: true,
		},
		{
			name: "header without password", r: req("GET", "/p", map[string]string{"Authorization": "Ticket " + testUUID}, ""),
			want: Credentials{testUUID, "", FromHeader}, found: true,
		},
		{
			name: "bare scheme", r: req("GET", "/p", map[string]string{"Authorization": "Ticket"}, ""),
			want: Credentials{"", "", FromHeader}, found: true,
		},
		{
			name: "header wins over query",
			r:    req("GET", "/p?uuid=q&password=q", map[string]string{"Authorization": "Ticket h:h"}, ""),
			want: Credentials{"h", "h", FromHeader}, found: true,
		},
		{
			name: "query", r: req("GET", "/p?a=1&uuid="+testUUID+"&password="+secretPW+"&b=2", nil, ""),
			want: Credentials{testUUID, secretPW, FromQuery}, found: true,
		},
		{
			name: "query after a non-ticket authorization",
			r:    req("GET", "/p?uuid=u&password=p", map[string]string{"Authorization": "Basic dTpw"}, ""),
			want: Credentials{"u", "p", FromQuery}, found: true,
		},
		{
			name: "query first values, escapes", r: req("GET", "/p?password=I+love+Paris&%75uid=u1&password=second&uuid=u2&x=%zz", nil, ""),
			want: Credentials{"u1", "I love Paris", FromQuery}, found: true,
		},
		{
			name: "query non-ASCII", r: req("GET", "/p?uuid=u&password=L%C3%A9onard%21", nil, ""),
			want: Credentials{"u", "Léonard!", FromQuery}, found: true,
		},
		{
			name: "query uuid only", r: req("GET", "/p?uuid="+testUUID, nil, ""),
			want: Credentials{testUUID, "", FromQuery}, found: true,
		},
		{
			name: "query empty password", r: req("GET", "/p?password=", nil, ""),
			want: Credentials{"", "", FromQuery}, found: true,
		},
		{
			name: "query semicolon piece ignored, as net/http does", r: req("GET", "/p?a=1;uuid=u;password=p", nil, ""),
		},
		{
			name: "query bad escape", r: req("GET", "/p?uuid=u&password=%zz", nil, ""),
			found: true, want: Credentials{From: FromQuery}, err: `query: parameter "password": bad %-escape`,
		},
		{
			name: "custom names", r: req("GET", "/p?uuid=no&password=no&t=u&pw=p", nil, ""), names: Names{UUID: "t", Password: "pw"},
			want: Credentials{"u", "p", FromQuery}, found: true,
		},
		{
			name: "custom password name only", r: req("GET", "/p?uuid=u&password=no&pw=p", nil, ""), names: Names{Password: "pw"},
			want: Credentials{"u", "p", FromQuery}, found: true,
		},
		{
			name: "form", r: req("POST", "/p?a=1", form, "x=1&uuid="+testUUID+"&password=I+love+Paris"),
			want: Credentials{testUUID, "I love Paris", FromForm}, found: true,
		},
		{
			name: "form content type with charset, any case",
			r:    req("POST", "/p", map[string]string{"Content-Type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"}, "password=p"),
			want: Credentials{"", "p", FromForm}, found: true,
		},
		{
			name: "form chunked", r: chunked(req("POST", "/p", form, "uuid=u&password=p")),
			want: Credentials{"u", "p", FromForm}, found: true,
		},
		{
			name: "query wins over form", r: req("POST", "/p?uuid=q", form, "uuid=f&password=f"),
			want: Credentials{"q", "", FromQuery}, found: true,
		},
		{name: "form on PUT is not read", r: req("PUT", "/p", form, "uuid=u&password=p")},
		{name: "form on GET is not read", r: req("GET", "/p", form, "uuid=u&password=p")},
		{name: "JSON body is not read", r: req("POST", "/p", map[string]string{"Content-Type": "application/json"}, `{"uuid":"u","password":"p"}`)},
		{name: "multipart body is not read", r: req("POST", "/p", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, "--x--")},
		{name: "form too large", r: req("POST", "/p", form, big), err: "form body is over 65536 bytes"},
		{
			name: "form bad escape", r: req("POST", "/p", form, "uuid=%"),
			found: true, want: Credentials{From: FromForm}, err: `form: parameter "uuid": bad %-escape`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if tc.r.Body != nil {
				before, _ = io.ReadAll(tc.r.Body)
				tc.r.Body = io.NopCloser(bytes.NewReader(before))
			}
			c, found, err := FromRequest(tc.r, tc.names, 64<<10)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if c != tc.want || found != tc.found {
				t.Fatalf("got %+v, %v; want %+v, %v", c, found, tc.want, tc.found)
			}
			// The body is still all there for the upstream, also after an error.
			if tc.r.Body != nil {
				after, err := io.ReadAll(tc.r.Body)
				if err != nil || !bytes.Equal(after, before) {
					t.Fatalf("body after FromRequest: %d bytes (%v), want %d", len(after), err, len(before))
				}
			}
		})
	}
}

// nowhere fails if s appears anywhere in r.
func nowhere(t *testing.T, r *http.Request, s string) {
	t.Helper()
	if strings.Contains(r.URL.String(), s) || strings.Contains(r.URL.RawQuery, s) || strings.Contains(r.RequestURI, s) {
		t.Errorf("%q still in the URL %q / %q", s, r.URL, r.RequestURI)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, s) {
				t.Errorf("%q still in header %s: %q", s, k, v)
			}
		}
	}
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%q still in the body %q", s, b)
		}
	}
	for _, v := range []url.Values{r.Form, r.PostForm} {
		for _, vs := range v {
			for _, x := range vs {
				if strings.Contains(x, s) {
					t.Errorf("%q still in the parsed form", s)
				}
			}
		}
	}
	if r.GetBody != nil {
		rc, _ := r.GetBody()
		b, _ := io.ReadAll(rc)
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%q still in GetBody's body %q", s, b)
		}
	}
}

func TestStrip(t *testing.T) {
	form := map[string]string{"Content-Type": formType}
	type want struct {
		query, requestURI string
		body              string // checked when the request has one
		header            http.Header
	}
	for _, tc := range []struct {
		name    string
		r       *http.Request
		names   Names
		before  func(*http.Request) // e.g. FromRequest, ParseForm
		want    want
		keepsPW bool // the password is legitimately elsewhere (a JSON body)
	}{
		{
			name: "query, others kept exactly",
			r:    req("GET", "/a%2Fb/c?z=1&uuid="+testUUID+"&b=%20x+y&password="+secretPW+"&&c&a=%C3%A9", nil, ""),
			want: want{query: "z=1&b=%20x+y&&c&a=%C3%A9", requestURI: "/a%2Fb/c?z=1&b=%20x+y&&c&a=%C3%A9"},
		},
		{
			name: "query only credentials",
			r:    req("GET", "/p?uuid="+testUUID+"&password="+secretPW, nil, ""),
			want: want{query: "", requestURI: "/p"},
		},
		{
			name: "query repeated, encoded names, empty values, semicolons",
			r:    req("GET", "/p?password="+secretPW+"&%70assword="+secretPW+"&uui%64=x&password&uuid=&a=1;password="+secretPW+";b=2&c=3;uuid=u", nil, ""),
			want: want{query: "a=1;b=2&c=3", requestURI: "/p?a=1;b=2&c=3"},
		},
		{
			name: "query nothing to strip is left byte for byte",
			r:    req("GET", "/p?b=2&a=%41&passwordx=1&x=uuid", nil, ""),
			want: want{query: "b=2&a=%41&passwordx=1&x=uuid", requestURI: "/p?b=2&a=%41&passwordx=1&x=uuid"},
		},
		{
			name:  "custom names",
			r:     req("GET", "/p?uuid=keep&password=keep&t="+testUUID+"&pw="+secretPW, nil, ""),
			names: Names{UUID: "t", Password: "pw"},
			want:  want{query: "uuid=keep&password=keep", requestURI: "/p?uuid=keep&password=keep"},
		},
		{
			name: "header",
			r: req("GET", "/p?a=1", map[string]string{
				"Authorization": "Ticket " + testUUID + ":" + secretPW,
				"X-Other":       "kept",
			}, ""),
			want: want{query: "a=1", requestURI: "/p?a=1", header: http.Header{"X-Other": {"kept"}}},
		},
		{
			name: "header: other schemes kept",
			r: func() *http.Request {
				r := req("GET", "/p", nil, "")
				r.Header["Authorization"] = []string{"Basic dTpw", "ticket  " + testUUID + ":" + secretPW}
				r.Header["authorization"] = []string{"TICKET x:" + secretPW} // not canonical, set by some code
				return r
			}(),
			want: want{query: "", requestURI: "/p", header: http.Header{"Authorization": {"Basic dTpw"}}},
		},
		{
			name: "referer",
			r: req("GET", "/p?uuid="+testUUID+"&password="+secretPW, map[string]string{
				"Referer": "https://example.com/prev?password=" + secretPW + "&page=2",
			}, ""),
			want: want{query: "", requestURI: "/p", header: http.Header{"Referer": {"https://example.com/prev?page=2"}}},
		},
		{
			name: "form",
			r:    req("POST", "/p?a=1", form, "x=1&uuid="+testUUID+"&password="+secretPW+"&y=%C3%A9+z&x=2"),
			want: want{query: "a=1", requestURI: "/p?a=1", body: "x=1&y=%C3%A9+z&x=2", header: http.Header{"Content-Type": {formType}}},
		},
		{
			name:   "form read by FromRequest first",
			r:      req("POST", "/p", form, "password="+secretPW+"&uuid="+testUUID+"&keep=1"),
			before: func(r *http.Request) { _, _, _ = FromRequest(r, Names{}, 1<<10) },
			want:   want{query: "", requestURI: "/p", body: "keep=1", header: http.Header{"Content-Type": {formType}}},
		},
		{
			name: "form, credentials in the header and in the body",
			r: req("POST", "/p", map[string]string{
				"Content-Type":  formType,
				"Authorization": "Ticket " + testUUID + ":" + secretPW,
			}, "password="+secretPW),
			before: func(r *http.Request) { _, _, _ = FromRequest(r, Names{}, 1<<10) },
			want:   want{query: "", requestURI: "/p", body: "", header: http.Header{"Content-Type": {formType}}},
		},
		{
			name: "form chunked gets a length",
			r:    chunked(req("POST", "/p", form, "a=b&password="+secretPW)),
			want: want{query: "", requestURI: "/p", body: "a=b", header: http.Header{"Content-Type": {formType}}},
		},
		{
			name: "form on PUT",
			r:    req("PUT", "/p", form, "password="+secretPW+"&a=b"),
			want: want{query: "", requestURI: "/p", body: "a=b", header: http.Header{"Content-Type": {formType}}},
		},
		{
			name: "form parsed by someone earlier",
			r:    req("POST", "/p?uuid="+testUUID, form, "password="+secretPW+"&a=b"),
			before: func(r *http.Request) {
				if err := r.ParseForm(); err != nil {
					panic(err)
				}
				r.Body = io.NopCloser(strings.NewReader("password=" + secretPW + "&a=b"))
			},
			want: want{query: "", requestURI: "/p", body: "a=b", header: http.Header{"Content-Type": {formType}}},
		},
		{
			name: "form with nothing to strip is left as it was",
			r:    req("POST", "/p", form, "b=2&a=%41"),
			want: want{query: "", requestURI: "/p", body: "b=2&a=%41", header: http.Header{"Content-Type": {formType}}},
		},
		{
			name:    "JSON body left alone",
			r:       req("POST", "/p?password="+secretPW, map[string]string{"Content-Type": "application/json"}, `{"password":"`+secretPW+`"}`),
			want:    want{query: "", requestURI: "/p", body: `{"password":"` + secretPW + `"}`, header: http.Header{"Content-Type": {"application/json"}}},
			keepsPW: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before(tc.r)
			}
			hadBody := tc.r.Body != nil && tc.r.Body != http.NoBody
			if err := Strip(tc.r, tc.names); err != nil {
				t.Fatal(err)
			}
			r := tc.r
			if r.URL.RawQuery != tc.want.query || r.RequestURI != tc.want.requestURI {
				t.Errorf("query %q, RequestURI %q; want %q, %q", r.URL.RawQuery, r.RequestURI, tc.want.query, tc.want.requestURI)
			}
			if r.RequestURI != r.URL.RequestURI() {
				t.Errorf("RequestURI %q does not match the URL's %q", r.RequestURI, r.URL.RequestURI())
			}
			header := r.Header.Clone()
			if hadBody {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					t.Fatal(err)
				}
				r.Body = io.NopCloser(bytes.NewReader(b))
				if string(b) != tc.want.body {
					t.Errorf("body %q, want %q", b, tc.want.body)
				}
				if r.ContentLength != -1 && r.ContentLength != int64(len(b)) {
					t.Errorf("ContentLength %d for a body of %d bytes", r.ContentLength, len(b))
				}
				if cl := header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(b)) {
					t.Errorf("Content-Length %s for a body of %d bytes", cl, len(b))
				}
				header.Del("Content-Length")
			}
			want := tc.want.header
			if want == nil {
				want = http.Header{}
			}
			if !equalHeader(header, want) {
				t.Errorf("headers %v, want %v", header, want)
			}
			if !tc.keepsPW {
				nowhere(t, r, secretPW)
			}
			nowhere(t, r, testUUID)
		})
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

func TestStripBodyErrors(t *testing.T) {
	big := "password=" + secretPW + "&a=" + strings.Repeat("x", DefaultMaxForm)
	r := req("POST", "/p", map[string]string{"Content-Type": formType}, big)
	if err := Strip(r, Names{}); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("Strip of a body over DefaultMaxForm: %v", err)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != big {
		t.Fatalf("body not given back: %d bytes of %d", len(b), len(big))
	}

	boom := errors.New("connection reset")
	r = req("POST", "/p", map[string]string{"Content-Type": formType}, "x")
	r.Body = io.NopCloser(iotest.ErrReader(boom))
	if err := Strip(r, Names{}); !errors.Is(err, boom) {
		t.Fatalf("Strip of a failing body: %v", err)
	}
	r = req("POST", "/p", map[string]string{"Content-Type": formType}, "x")
	r.Body = io.NopCloser(iotest.ErrReader(boom))
	if _, _, err := FromRequest(r, Names{}, 0); !errors.Is(err, boom) {
		t.Fatalf("FromRequest of a failing body: %v", err)
	}
}

// TestStripThroughProxy sends stripped requests through a reverse proxy:
// the upstream gets exactly the stripped request, with a correct length.
func TestStripThroughProxy(t *testing.T) {
	type seen struct {
		uri, body, auth, cl string
		te                  []string
	}
	got := make(chan seen, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.RequestURI, string(b), r.Header.Get("Authorization"), r.Header.Get("Content-Length"), r.TransferEncoding}
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, found, err := FromRequest(r, Names{}, 1<<10)
		if err != nil || !found || c.Password != secretPW {
			http.Error(w, "no ticket", http.StatusUnauthorized)
			return
		}
		if err := Strip(r, Names{}); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer gateway.Close()

	for _, tc := range []struct {
		name, target, body, auth string
		chunked                  bool
		want                     seen
	}{
		{"query", "/p?a=1&uuid=" + testUUID + "&password=" + secretPW + "&b=2", "", "", false, seen{uri: "/p?a=1&b=2"}},
		{"form", "/p?a=1", "x=1&uuid=" + testUUID + "&password=" + secretPW + "&y=2", "", false, seen{uri: "/p?a=1", body: "x=1&y=2", cl: "7"}},
		{"form chunked", "/p", "uuid=" + testUUID + "&password=" + secretPW + "&y=%C3%A9", "", true, seen{uri: "/p", body: "y=%C3%A9", cl: "8"}},
		{"header", "/p", "k=v", "Ticket " + testUUID + ":" + secretPW, false, seen{uri: "/p", body: "k=v", cl: "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
			}
			method := "GET"
			if body != nil {
				method = "POST"
			}
			r, err := http.NewRequest(method, gateway.URL+tc.target, body)
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				r.Header.Set("Content-Type", formType)
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			s := <-got
			if s.uri != tc.want.uri || s.body != tc.want.body || s.auth != "" || s.cl != tc.want.cl || len(s.te) != 0 {
				t.Fatalf("upstream saw %+v, want %+v", s, tc.want)
			}
		})
	}
}

func TestUUID(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{testUUID, true},
		{strings.ToUpper(testUUID), true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"0F8FAD5B-d9cb-469f-a165-70867728950e", true},
		{"0f8fad5b-d9cb-469f-a165-70867728950", false},
		{"0f8fad5b-d9cb-469f-a165-70867728950e0", false},
		{"0f8fad5bd9cb-469f-a165-70867728950e0", false},
		{"0f8fad5b-d9cb-469f-a165_70867728950e", false},
		{"0f8fad5g-d9cb-469f-a165-70867728950e", false},
		{"{0f8fad5b-d9cb-469f-a165-70867728950e}", false},
		{"urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", false},
		{"0f8fad5bd9cb469fa16570867728950e", false},
		{" 0f8fad5b-d9cb-469f-a165-70867728950", false},
		{"", false},
	} {
		if got := ValidUUID(tc.s); got != tc.want {
			t.Errorf("ValidUUID(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
	seen := map[string]bool{}
	for range 1000 {
		u := NewUUID()
		if !ValidUUID(u) || strings.ToLower(u) != u || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) {
			t.Fatalf("NewUUID() = %q: not a lower-case version 4 UUID", u)
		}
		if seen[u] {
			t.Fatalf("%q twice", u)
		}
		seen[u] = true
	}
}
