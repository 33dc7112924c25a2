package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/store"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves latchkey's operations as JSON under /latchkey/ on Caddy's
// admin endpoint:
//
//	GET  /latchkey/users                      list users
//	POST /latchkey/users                      add a user {"email","name","phone","site","roles"}
//	POST /latchkey/users/<email|id>/activate
//	POST /latchkey/users/<email|id>/deactivate
//	GET  /latchkey/sessions?user=&all=true    list sessions
//	POST /latchkey/sessions/<id>/revoke
//	GET  /latchkey/invites?domain=
//	POST /latchkey/invites                    {"email","name","phone","domain","login_url","send"}
//	POST /latchkey/invites/<id>/revoke
//	POST /latchkey/invites/<id>/send          new code, mailed
//	GET  /latchkey/links?user=
//	POST /latchkey/links                      {"user","url","ttl","not_before","max_uses","mode","methods","data","bind_query"}
//	GET  /latchkey/links/<jti>                the link and every attempt to use it
//	POST /latchkey/links/<jti>/revoke
//	POST /latchkey/users/<email|id>/revoke-links
//	GET  /latchkey/tickets?place=&purpose=&state=
//	POST /latchkey/tickets                    {"place","purpose","password","expires","user","data","url","count"}
//	GET  /latchkey/tickets/<uuid>             the ticket and every attempt to use it
//	POST /latchkey/tickets/<uuid>/revoke
//	GET  /latchkey/audit?since=&user=&kind=&outcome=&limit=
//	GET  /latchkey/mail?state=&limit=         the outbox, newest first, without bodies
type adminAPI struct {
	ctx caddy.Context
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.latchkey",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision keeps the context to find the running app at request time.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	return nil
}

// Routes implements caddy.AdminRouter.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/latchkey/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func (a *adminAPI) ops() (ops, error) {
	// Only an app the running config already has: asking for one that is
	// not there would open a store outside Caddy's lifecycle.
	appIface, err := a.ctx.AppIfConfigured("latchkey")
	if err != nil {
		return ops{}, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("latchkey is not in the running config")}
	}
	app := appIface.(*App)
	o := ops{st: app.store, now: time.Now, app: app, cache: app.sessions, secret: app.secret, ring: app.links, tickets: app.tickets, sites: app.sites}
	if app.mailer != nil {
		o.mailer = app.mailer
	}
	return o, nil
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	o, err := a.ops()
	if err != nil {
		return err
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/latchkey/"), "/"), "/")
	ctx := r.Context()
	q := r.URL.Query()
	switch {
	case route(parts, r, http.MethodGet, "users"):
		us, err := o.st.Users(ctx)
		if err != nil {
			return apiErr(err)
		}
		out := toJSON(us, toUserJSON)
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "users"):
		var in newUser
		if err := decode(r, &in); err != nil {
			return err
		}
		u, err := o.addUser(ctx, in)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, toUserJSON(u))
	case route(parts, r, http.MethodPost, "users", "*", "activate"), route(parts, r, http.MethodPost, "users", "*", "deactivate"):
		u, err := o.setActive(ctx, parts[1], q.Get("site"), parts[2] == "activate")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, toUserJSON(u))
	case route(parts, r, http.MethodGet, "sessions"):
		all, _ := strconv.ParseBool(q.Get("all"))
		ss, err := o.sessions(ctx, q.Get("user"), all)
		if err != nil {
			return apiErr(err)
		}
		out := toJSON(ss, toSessionJSON)
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "sessions", "*", "revoke"):
		if err := o.revokeSession(ctx, parts[1]); err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"revoked": parts[1]})
	case route(parts, r, http.MethodGet, "invites"):
		invs, err := o.invites(ctx, q.Get("domain"))
		if err != nil {
			return apiErr(err)
		}
		out := toJSON(invs, toInviteJSON)
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "invites"):
		var in newInvite
		if err := decode(r, &in); err != nil {
			return err
		}
		if in.Domain == "" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("domain (the site the code works on) is required")}
		}
		s, err := pickSite(o.sites, in.Domain)
		if err != nil {
			return apiErr(inputError{err})
		}
		out, err := o.createInvite(ctx, in, s, "admin-api")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, out)
	case route(parts, r, http.MethodPost, "invites", "*", "revoke"):
		inv, err := o.revokeInvite(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, toInviteJSON(inv))
	case route(parts, r, http.MethodPost, "invites", "*", "send"):
		out, err := o.sendInvite(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodGet, "links"):
		ls, err := o.links(ctx, q.Get("user"))
		if err != nil {
			return apiErr(err)
		}
		out := toJSON(ls, toLinkJSON)
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "links"):
		var in newLink
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := o.createLink(ctx, in, "admin-api")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, out)
	case route(parts, r, http.MethodGet, "links", "*"):
		out, err := o.showLink(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "links", "*", "revoke"):
		msg, err := o.revokeLinks(ctx, parts[1], "")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"result": msg})
	case route(parts, r, http.MethodPost, "users", "*", "revoke-links"):
		msg, err := o.revokeLinks(ctx, "", parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"result": msg})
	case route(parts, r, http.MethodGet, "tickets"):
		ts, err := o.st.Tickets(ctx, store.TicketFilter{Place: q.Get("place"), Purpose: q.Get("purpose"), State: q.Get("state")})
		if err != nil {
			return apiErr(err)
		}
		out := toJSON(ts, toTicketJSON)
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "tickets"):
		var in newTickets
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := o.createTickets(ctx, in)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, out)
	case route(parts, r, http.MethodGet, "tickets", "*"):
		out, err := o.showTicket(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "tickets", "*", "revoke"):
		if err := o.revokeTicket(ctx, parts[1]); err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"revoked": parts[1]})
	case route(parts, r, http.MethodGet, "audit"):
		aq := auditQuery{Since: q.Get("since"), User: q.Get("user"), Kind: q.Get("kind"), Outcome: q.Get("outcome")}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil {
				return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit: %q is not a number", l)}
			}
			aq.Limit = n
		}
		evs, err := o.audit(ctx, aq)
		if err != nil {
			return apiErr(err)
		}
		out := toJSON(evs, toAuditJSON)
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodGet, "mail"):
		limit := 0
		if l := q.Get("limit"); l != "" {
			if limit, err = strconv.Atoi(l); err != nil {
				return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit: %q is not a number", l)}
			}
		}
		ms, err := listMails(ctx, o.st, q.Get("state"), limit)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, toJSON(ms, toMailJSON))
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no latchkey admin route %s %s", r.Method, r.URL.Path)}
}

// route matches a path split on '/', where "*" matches any one segment.
func route(parts []string, r *http.Request, method string, pattern ...string) bool {
	if r.Method != method || len(parts) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && p != parts[i] || parts[i] == "" {
			return false
		}
	}
	return true
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding request body: %w", err)}
	}
	return nil
}

// apiErr turns an operation's error into a status.
func apiErr(err error) error {
	status := http.StatusInternalServerError
	var ie inputError
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		status = http.StatusConflict
	case errors.As(err, &ie):
		status = http.StatusBadRequest
	}
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func reply(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
