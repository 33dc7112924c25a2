// Package web holds the gateway's own pages: embedded templates that a site
// may replace with files of the same name in a directory of its own.
package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

//go:embed templates/*.html
var embedded embed.FS

// Pages renders the gateway's pages.
type Pages struct {
	tmpl map[string]*template.Template
}

// Page names, one per template file.
const (
	PageRefused   = "refused.html"
	PageLogout    = "logout.html"
	PageLogin     = "login.html"
	PageInvite    = "invite.html"
	PageConfirm   = "confirm.html"
	PageSessions  = "sessions.html"
	PageDashboard = "dashboard.html"
)

// New parses the embedded templates and, for each file of the same name in
// overrideDir (if not empty), that file instead. base.html defines the
// shared "head" and "foot" blocks and may be overridden too.
func New(overrideDir string) (*Pages, error) {
	read := func(name string) ([]byte, error) {
		if overrideDir != "" {
			b, err := os.ReadFile(filepath.Join(overrideDir, name))
			if err == nil {
				return b, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("reading page template %q: %w", filepath.Join(overrideDir, name), err)
			}
		}
		return embedded.ReadFile("templates/" + name)
	}
	base, err := read("base.html")
	if err != nil {
		return nil, err
	}
	entries, err := embedded.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	p := &Pages{tmpl: make(map[string]*template.Template)}
	for _, e := range entries {
		name := e.Name()
		if name == "base.html" {
			continue
		}
		src, err := read(name)
		if err != nil {
			return nil, err
		}
		t, err := template.New("base.html").Parse(string(base))
		if err == nil {
			t, err = t.New(name).Parse(string(src))
		}
		if err != nil {
			return nil, fmt.Errorf("parsing page template %s: %w", name, err)
		}
		p.tmpl[name] = t
	}
	return p, nil
}

// Render writes page name with status. It renders to a buffer first so that a
// template error becomes a clean 500 rather than half a page.
func (p *Pages) Render(w http.ResponseWriter, status int, name string, data any) error {
	body, err := p.Bytes(name, data)
	if err != nil {
		return err
	}
	return Write(w, status, body)
}

// Bytes renders a page without writing it, for pages that are the same
// for every request (refusals), which the caller renders once and keeps.
func (p *Pages) Bytes(name string, data any) ([]byte, error) {
	t, ok := p.tmpl[name]
	if !ok {
		return nil, fmt.Errorf("no page template %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return nil, fmt.Errorf("rendering page %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// Write sends a rendered page with the headers every page has.
func Write(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h["Content-Type"] = contentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["X-Content-Type-Options"] = nosniff
	h["X-Frame-Options"] = deny
	h["Content-Security-Policy"] = csp
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// Header values shared by every page (never modified), so that writing
// them allocates nothing.
var (
	contentType = []string{"text/html; charset=utf-8"}
	nosniff     = []string{"nosniff"}
	deny        = []string{"DENY"}
	csp         = []string{"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"}
)
