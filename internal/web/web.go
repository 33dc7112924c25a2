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
	PageRefused = "refused.html"
	PageLogout  = "logout.html"
	PageLogin   = "login.html"
	PageInvite  = "invite.html"
	PageConfirm = "confirm.html"
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
	t, ok := p.tmpl[name]
	if !ok {
		return fmt.Errorf("no page template %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("rendering page %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}
