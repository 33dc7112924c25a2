package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/latchkeyhq/latchkey/internal/ops"
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

// operations are the running app's, on every site of its config.
func (a *adminAPI) operations() (*ops.Ops, error) {
	// Only an app the running config already has: asking for one that is
	// not there would open a store outside Caddy's lifecycle.
	appIface, err := a.ctx.AppIfConfigured("latchkey")
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("latchkey is not in the running config")}
	}
	app := appIface.(*App)
	return app.operations(app.sites), nil
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	o, err := a.operations()
	if err != nil {
		return err
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/latchkey/"), "/"), "/")
	ctx := r.Context()
	q := r.URL.Query()
	switch {
	case route(parts, r, http.MethodGet, "users"):
		us, err := o.Users(ctx)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToJSON(us, ops.ToUserJSON))
	case route(parts, r, http.MethodPost, "users"):
		var in ops.NewUser
		if err := decode(r, &in); err != nil {
			return err
		}
		u, err := o.AddUser(ctx, in)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, ops.ToUserJSON(u))
	case route(parts, r, http.MethodPost, "users", "*", "activate"), route(parts, r, http.MethodPost, "users", "*", "deactivate"):
		u, err := o.SetActive(ctx, parts[1], q.Get("site"), parts[2] == "activate")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToUserJSON(u))
	case route(parts, r, http.MethodGet, "sessions"):
		all, _ := strconv.ParseBool(q.Get("all"))
		ss, err := o.Sessions(ctx, q.Get("user"), all)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToJSON(ss, ops.ToSessionJSON))
	case route(parts, r, http.MethodPost, "sessions", "*", "revoke"):
		if err := o.RevokeSession(ctx, parts[1]); err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"revoked": parts[1]})
	case route(parts, r, http.MethodGet, "invites"):
		invs, err := o.Invites(ctx, q.Get("domain"))
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToJSON(invs, ops.ToInviteJSON))
	case route(parts, r, http.MethodPost, "invites"):
		var in ops.NewInvite
		if err := decode(r, &in); err != nil {
			return err
		}
		if in.Domain == "" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("domain (the site the code works on) is required")}
		}
		s, err := o.PickSite(in.Domain)
		if err != nil {
			return apiErr(err)
		}
		out, err := o.CreateInvite(ctx, s, in, "admin-api")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, out)
	case route(parts, r, http.MethodPost, "invites", "*", "revoke"):
		inv, err := o.RevokeInvite(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToInviteJSON(inv))
	case route(parts, r, http.MethodPost, "invites", "*", "send"):
		out, err := o.SendInvite(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodGet, "links"):
		ls, err := o.Links(ctx, q.Get("user"))
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToJSON(ls, ops.ToLinkJSON))
	case route(parts, r, http.MethodPost, "links"):
		var in ops.NewLink
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := o.MintLink(ctx, in, "admin-api")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, out)
	case route(parts, r, http.MethodGet, "links", "*"):
		out, err := o.ShowLink(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "links", "*", "revoke"):
		msg, err := o.RevokeLinks(ctx, parts[1], "")
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"result": msg})
	case route(parts, r, http.MethodPost, "users", "*", "revoke-links"):
		msg, err := o.RevokeLinks(ctx, "", parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"result": msg})
	case route(parts, r, http.MethodPost, "users", "*", "revoke-sessions"):
		msg, err := o.RevokeUserSessions(ctx, parts[1], q.Get("site"))
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"result": msg})
	case route(parts, r, http.MethodGet, "roles"):
		rs, err := o.ListRoles(ctx, q.Get("site"))
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, rs)
	case route(parts, r, http.MethodPost, "roles"):
		var in ops.NewRole
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := o.CreateRole(ctx, in)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, out)
	case route(parts, r, http.MethodPost, "users", "*", "roles"):
		var in struct {
			Role string `json:"role"`
			Site string `json:"site"`
		}
		if err := decode(r, &in); err != nil {
			return err
		}
		msg, err := o.AddRole(ctx, parts[1], in.Role, in.Site)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"result": msg})
	case route(parts, r, http.MethodDelete, "users", "*", "roles", "*"):
		msg, err := o.RemoveRole(ctx, parts[1], parts[3], q.Get("site"))
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"result": msg})
	case route(parts, r, http.MethodGet, "tickets"):
		ts, err := o.Tickets(ctx, store.TicketFilter{Place: q.Get("place"), Purpose: q.Get("purpose"), State: q.Get("state")})
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToJSON(ts, ops.ToTicketJSON))
	case route(parts, r, http.MethodPost, "tickets"):
		var in ops.NewTickets
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := o.CreateTickets(ctx, in)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusCreated, out)
	case route(parts, r, http.MethodGet, "tickets", "*"):
		out, err := o.ShowTicket(ctx, parts[1])
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, out)
	case route(parts, r, http.MethodPost, "tickets", "*", "revoke"):
		if err := o.RevokeTicket(ctx, parts[1]); err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, map[string]string{"revoked": parts[1]})
	case route(parts, r, http.MethodGet, "audit"):
		aq := ops.AuditQuery{Since: q.Get("since"), User: q.Get("user"), Kind: q.Get("kind"), Outcome: q.Get("outcome"),
			Reason: q.Get("reason"), IP: q.Get("ip"), Session: q.Get("session"), Site: q.Get("site")}
		for _, p := range []struct {
			name string
			dst  *int64
		}{{"limit", nil}, {"before", &aq.Before}} {
			v := q.Get(p.name)
			if v == "" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("%s: %q is not a number", p.name, v)}
			}
			if p.dst != nil {
				*p.dst = n
			} else {
				aq.Limit = int(n)
			}
		}
		if f := q.Get("format"); f != "" {
			// The whole selection, streamed: any size.
			ct := "application/jsonl"
			if f == "csv" {
				ct = "text/csv; charset=utf-8"
			}
			w.Header().Set("Content-Type", ct)
			if _, err := o.ExportAudit(ctx, aq, f, w); err != nil {
				return apiErr(err)
			}
			return nil
		}
		evs, err := o.Audit(ctx, aq)
		if err != nil {
			return apiErr(err)
		}
		// The cursor for the next page, when this one is full.
		limit := aq.Limit
		if limit <= 0 {
			limit = 100
		}
		if len(evs) == limit {
			w.Header().Set("X-Latchkey-Next-Before", strconv.FormatInt(evs[len(evs)-1].ID, 10))
		}
		return reply(w, http.StatusOK, ops.ToJSON(evs, ops.ToAuditJSON))
	case route(parts, r, http.MethodGet, "mail"):
		limit := 0
		if l := q.Get("limit"); l != "" {
			if limit, err = strconv.Atoi(l); err != nil {
				return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit: %q is not a number", l)}
			}
		}
		ms, err := o.Mails(ctx, q.Get("state"), limit)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, http.StatusOK, ops.ToJSON(ms, ops.ToMailJSON))
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
	var ie ops.InputError
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
