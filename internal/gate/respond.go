package gate

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/web"
)

// wantsJSON decides between a page and JSON. Browsers send text/html in
// Accept; API clients that ask for JSON get JSON; anything else (curl's */*)
// gets the page, which is readable in a terminal too.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	if a == "" {
		return false
	}
	return strings.Contains(a, "json") && !strings.Contains(a, "text/html")
}

// wantsPage reports whether the client is a browser that can follow a
// redirect to a login page.
func wantsPage(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

type refusalBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
	Login  string `json:"login,omitempty"`
}

type refusalPage struct {
	Title    string
	Message  string
	Status   int
	LoginURL string
}

var statusMessages = map[int]string{
	http.StatusUnauthorized:    "You need to sign in to see this page.",
	http.StatusForbidden:       "This credential does not allow this request.",
	http.StatusGone:            "This credential can no longer be used.",
	http.StatusTooManyRequests: "Too many attempts. Please wait a moment and try again.",
	http.StatusConflict:        "This credential is being used by another request right now.",
}

// refuse writes a refusal as JSON or as a page. Refusals are never cached:
// a later request with a credential must not be answered from a cache.
func refuse(w http.ResponseWriter, r *http.Request, pages *web.Pages, status int, reason, loginURL string) error {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		body, _ := json.Marshal(refusalBody{Error: strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")), Reason: reason, Login: loginURL})
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, err := w.Write(body)
		return err
	}
	return pages.Render(w, status, web.PageRefused, refusalPage{
		Title:    http.StatusText(status),
		Message:  statusMessages[status],
		Status:   status,
		LoginURL: loginURL,
	})
}

// SafeNext returns next if it is a same-site relative path, else "". It is
// what keeps a login or logout redirect from becoming an open redirect.
func SafeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return ""
	}
	// "//host" and "/\host" are read as another host by browsers.
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return ""
	}
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f || next[i] == '\\' {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}

// loginRedirect is loginURL with next set to the request's path and query.
func loginRedirect(loginURL string, r *http.Request) string {
	next := SafeNext(r.URL.RequestURI())
	if next == "" {
		return loginURL
	}
	sep := "?"
	if strings.Contains(loginURL, "?") {
		sep = "&"
	}
	return loginURL + sep + "next=" + url.QueryEscape(next)
}
