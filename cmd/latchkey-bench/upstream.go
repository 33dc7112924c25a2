package main

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Path prefixes: each target's requests carry one, so the upstream can
// tell which site a request came through and check what that site must
// have done to it.
const (
	prefixPlain   = "/plain/"   // plain reverse_proxy (and the static 401 site, which never proxies)
	prefixSession = "/lk/"      // latchkey, session cookie
	prefixLink    = "/link/"    // latchkey { link }, unlimited request-mode link
	prefixLimited = "/limited/" // latchkey { link { confirm off } }, one-use links
	prefixTicket  = "/ticket/"  // latchkey { ticket bench run }
	prefixFwd     = "/fa/"      // forward_auth then reverse_proxy
	prefixStore   = "/store/"   // latchkey, sessions in a 1k or a 1M store
	pathRefused   = "/lk/refused"

	// The same sites on the PostgreSQL gateway, under prefixes of their
	// own: its answers are counted and checked apart from SQLite's, and
	// its link's user is a row of its own store.
	prefixPGSession = "/pg-lk/"
	prefixPGLink    = "/pg-link/"
	prefixPGLimited = "/pg-limited/"
	prefixPGTicket  = "/pg-ticket/"
	pathPGRefused   = "/pg-lk/refused"
)

// upstreamCount counts the requests under one prefix, and those that came
// without what the gateway in front must have added or removed.
type upstreamCount struct {
	n, bad atomic.Int64
	why    atomic.Value // string: the first bad request's problem
}

func (c *upstreamCount) add(problem string) {
	c.n.Add(1)
	if problem != "" {
		c.bad.Add(1)
		c.why.CompareAndSwap(nil, problem)
	}
}

// upstream is the fast origin every site proxies to: a tiny body, and a
// check of each request's identity headers.
type upstream struct {
	addr    string
	srv     *http.Server
	counts  map[string]*upstreamCount
	leaked  upstreamCount // refusals that reached the upstream
	unknown upstreamCount // paths under no prefix
	// The user of the links, in the SQLite store and in the PostgreSQL
	// one ("" when that gateway is not run).
	linkUID, pgLinkUID string
}

func startUpstream(linkUID, pgLinkUID string) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{addr: ln.Addr().String(), linkUID: linkUID, pgLinkUID: pgLinkUID, counts: map[string]*upstreamCount{}}
	prefixes := []string{prefixPlain, prefixSession, prefixLink, prefixLimited, prefixTicket, prefixFwd, prefixStore}
	if pgLinkUID != "" {
		prefixes = append(prefixes, prefixPGSession, prefixPGLink, prefixPGLimited, prefixPGTicket)
	}
	for _, p := range prefixes {
		u.counts[p] = &upstreamCount{}
	}
	body := []byte("hello from the upstream\n")
	u.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.check(r)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(body)
		}),
	}
	go u.srv.Serve(ln)
	return u, nil
}

func (u *upstream) check(r *http.Request) {
	path := r.URL.Path
	if path == pathRefused || path == pathPGRefused {
		u.leaked.add("a refused request reached the upstream")
		return
	}
	i := strings.IndexByte(path[min(1, len(path)):], '/')
	if i < 0 {
		u.unknown.add("unexpected path " + path)
		return
	}
	prefix := path[:i+2]
	c := u.counts[prefix]
	if c == nil {
		u.unknown.add("unexpected path " + path)
		return
	}
	h := r.Header
	problem := ""
	switch prefix {
	case prefixSession, prefixStore, prefixPGSession:
		switch {
		case h.Get("X-User-ID") == "" || h.Get("X-Session-ID") == "":
			problem = "no X-User-ID or X-Session-ID"
		case strings.Contains(h.Get("Cookie"), cookieName+"="):
			problem = "the gateway's cookie was forwarded"
		}
	case prefixLink, prefixLimited, prefixPGLink, prefixPGLimited:
		uid := u.linkUID
		if prefix == prefixPGLink || prefix == prefixPGLimited {
			uid = u.pgLinkUID
		}
		switch {
		case h.Get("X-User-ID") != uid:
			problem = "X-User-ID is " + h.Get("X-User-ID") + ", not the link's user " + uid
		case strings.Contains(r.URL.RawQuery, "token="):
			problem = "the token reached the upstream"
		}
	case prefixTicket, prefixPGTicket:
		switch {
		case h.Get("X-Ticket-ID") == "":
			problem = "no X-Ticket-ID"
		case r.URL.RawQuery != "":
			problem = "the ticket's credentials reached the upstream"
		}
	case prefixFwd:
		if h.Get("Remote-User") != "bench" {
			problem = "no Remote-User from forward_auth"
		}
	}
	c.add(problem)
}

// startAuth is the forward_auth server at its best: 200 and the user's
// header at once, no body.
func startAuth() (string, *http.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Remote-User", "bench")
			w.WriteHeader(http.StatusOK)
		}),
	}
	go srv.Serve(ln)
	return ln.Addr().String(), srv, nil
}
