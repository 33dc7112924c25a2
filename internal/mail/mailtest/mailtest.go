// Package mailtest is a real SMTP server (github.com/emersion/go-smtp) for
// tests: it keeps every message it is given.
package mailtest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one mail as the SMTP server saw it.
type Message struct {
	From       string
	To         []string
	Data       []byte
	User, Pass string
}

// Backend is an SMTP server backend that keeps every message it is given.
type Backend struct {
	User, Pass string // when set, AUTH with these is required before MAIL

	mu   sync.Mutex
	msgs []Message
}

func (b *Backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

// Messages returns every message received so far.
func (b *Backend) Messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.msgs...)
}

type session struct {
	b      *Backend
	r      Message
	authed bool
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.b.User || pass != s.b.Pass {
			return smtp.ErrAuthFailed
		}
		s.authed, s.r.User, s.r.Pass = true, user, pass
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.b.User != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.r.From = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.To = append(s.r.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.Data = b
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.r)
	s.b.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.r = Message{User: s.r.User, Pass: s.r.Pass} }
func (s *session) Logout() error { return nil }

// Serve starts an SMTP server for be on 127.0.0.1 and returns its address.
// setup may adjust the server and wrap the listener (for implicit TLS).
func Serve(t testing.TB, be *Backend, setup func(*smtp.Server, net.Listener) net.Listener) string {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		l = setup(srv, l)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}
