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

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	appIface, err := a.ctx.AppIfConfigured("latchkey")
	if err != nil {
		// Only an app the running config already has: asking for one that
		// is not there would open a store outside Caddy's lifecycle.
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("latchkey is not in the running config")}
	}
	app := appIface.(*App)
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/latchkey/"), "/"), "/")
	var allowed []string
	for _, rt := range adminRoutes {
		if !rt.matches(parts) {
			continue
		}
		if rt.method != r.Method {
			allowed = append(allowed, rt.method)
			continue
		}
		if rt.raw != nil {
			return rt.raw(w, r, app)
		}
		status, v, err := rt.do(app.operations(app.sites), r, parts)
		if err != nil {
			return apiErr(err)
		}
		return reply(w, status, v)
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", "))}
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no latchkey admin route %s", r.URL.Path)}
}

// adminRoute is one operation of the admin API: a method and a path whose
// "*" segments match any one segment. do answers with a status and a value
// sent as JSON; raw writes its own answer.
type adminRoute struct {
	method  string
	pattern []string
	do      func(o *ops.Ops, r *http.Request, parts []string) (status int, v any, err error)
	raw     func(w http.ResponseWriter, r *http.Request, app *App) error
}

func (rt adminRoute) matches(parts []string) bool {
	if len(parts) != len(rt.pattern) {
		return false
	}
	for i, p := range rt.pattern {
		if p != "*" && p != parts[i] || parts[i] == "" {
			return false
		}
	}
	return true
}

type opFunc = func(o *ops.Ops, r *http.Request, parts []string) (int, any, error)

func get(path string, do opFunc) adminRoute {
	return adminRoute{method: http.MethodGet, pattern: strings.Split(path, "/"), do: do}
}

func post(path string, do opFunc) adminRoute {
	return adminRoute{method: http.MethodPost, pattern: strings.Split(path, "/"), do: do}
}

func del(path string, do opFunc) adminRoute {
	return adminRoute{method: http.MethodDelete, pattern: strings.Split(path, "/"), do: do}
}

// ok and created give an operation's result its status.
func ok[T any](v T, err error) (int, any, error)      { return http.StatusOK, v, err }
func created[T any](v T, err error) (int, any, error) { return http.StatusCreated, v, err }

// list answers a list: records of one shape, [] when there are none.
func list[T, J any](xs []T, conv func(*T) J, err error) (int, any, error) {
	return http.StatusOK, ops.ToJSON(xs, conv), err
}

// decoded reads the JSON body into a new T, then runs fn with it.
func decoded[T any](r *http.Request, fn func(in T) (int, any, error)) (int, any, error) {
	var in T
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	return fn(in)
}

func badInput(format string, args ...any) error {
	return ops.InputError{Err: fmt.Errorf(format, args...)}
}

// adminRoutes are the operations, in the order the package comment lists.
var adminRoutes = []adminRoute{
	{method: http.MethodPost, pattern: []string{"cli"}, raw: serveCLI},
	{method: http.MethodGet, pattern: []string{"store"}, raw: serveStore},
	get("users", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		us, err := o.Users(r.Context())
		return list(us, ops.ToUserJSON, err)
	}),
	post("users", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		return decoded(r, func(in ops.NewUser) (int, any, error) {
			u, err := o.AddUser(r.Context(), in)
			if err != nil {
				return 0, nil, err
			}
			return created(ops.ToUserJSON(u), nil)
		})
	}),
	post("users/*/activate", setActiveRoute(true)),
	post("users/*/deactivate", setActiveRoute(false)),
	get("sessions", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		q := r.URL.Query()
		all, _ := strconv.ParseBool(q.Get("all"))
		ss, err := o.Sessions(r.Context(), q.Get("user"), all)
		return list(ss, ops.ToSessionJSON, err)
	}),
	post("sessions/*/revoke", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.RevokeSession(r.Context(), p[1]))
	}),
	get("invites", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		invs, err := o.Invites(r.Context(), r.URL.Query().Get("domain"))
		return list(invs, o.ToInviteJSON, err)
	}),
	post("invites", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		return decoded(r, func(in ops.NewInvite) (int, any, error) {
			if in.Domain == "" {
				return 0, nil, badInput("domain (the site the code works on) is required")
			}
			s, err := o.PickSite(in.Domain)
			if err != nil {
				return 0, nil, err
			}
			return created(o.CreateInvite(r.Context(), s, in, "admin-api"))
		})
	}),
	post("invites/*/revoke", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.RevokeInvite(r.Context(), p[1]))
	}),
	post("invites/*/send", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.SendInvite(r.Context(), p[1]))
	}),
	get("links", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		ls, err := o.Links(r.Context(), r.URL.Query().Get("user"))
		return list(ls, ops.ToLinkJSON, err)
	}),
	post("links", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		return decoded(r, func(in ops.NewLink) (int, any, error) {
			return created(o.MintLink(r.Context(), in, "admin-api"))
		})
	}),
	get("links/*", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.ShowLink(r.Context(), p[1]))
	}),
	post("links/*/revoke", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.RevokeLinks(r.Context(), p[1], ""))
	}),
	post("users/*/revoke-links", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.RevokeLinks(r.Context(), "", p[1]))
	}),
	post("users/*/revoke-sessions", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.RevokeUserSessions(r.Context(), p[1], r.URL.Query().Get("site")))
	}),
	get("roles", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		return ok(o.ListRoles(r.Context(), r.URL.Query().Get("site")))
	}),
	post("roles", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		return decoded(r, func(in ops.NewRole) (int, any, error) {
			return created(o.CreateRole(r.Context(), in))
		})
	}),
	post("users/*/roles", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return decoded(r, func(in struct {
			Role string `json:"role"`
			Site string `json:"site"`
		}) (int, any, error) {
			msg, err := o.AddRole(r.Context(), p[1], in.Role, in.Site)
			return ok(map[string]string{"message": msg}, err)
		})
	}),
	del("users/*/roles/*", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.RemoveRole(r.Context(), p[1], p[3], r.URL.Query().Get("site")))
	}),
	get("tickets", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		q := r.URL.Query()
		ts, err := o.Tickets(r.Context(), store.TicketFilter{Place: q.Get("place"), Purpose: q.Get("purpose"), State: q.Get("state")})
		return list(ts, ops.ToTicketJSON, err)
	}),
	post("tickets", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		return decoded(r, func(in ops.NewTickets) (int, any, error) {
			return created(o.CreateTickets(r.Context(), in))
		})
	}),
	get("tickets/*", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.ShowTicket(r.Context(), p[1]))
	}),
	post("tickets/*/revoke", func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		return ok(o.RevokeTicket(r.Context(), p[1]))
	}),
	{method: http.MethodGet, pattern: []string{"audit"}, raw: serveAudit},
	get("mail", func(o *ops.Ops, r *http.Request, _ []string) (int, any, error) {
		q := r.URL.Query()
		limit := 0
		if l := q.Get("limit"); l != "" {
			var err error
			if limit, err = strconv.Atoi(l); err != nil {
				return 0, nil, badInput("limit: %q is not a number", l)
			}
		}
		ms, err := o.Mails(r.Context(), q.Get("state"), limit)
		return list(ms, ops.ToMailJSON, err)
	}),
}

func setActiveRoute(active bool) opFunc {
	return func(o *ops.Ops, r *http.Request, p []string) (int, any, error) {
		u, err := o.SetActive(r.Context(), p[1], r.URL.Query().Get("site"), active)
		if err != nil {
			return 0, nil, err
		}
		return ok(ops.ToUserJSON(u), nil)
	}
}

// serveAudit pages through the audit trail with a cursor, or streams the
// whole selection as JSON lines or CSV.
func serveAudit(w http.ResponseWriter, r *http.Request, app *App) error {
	o := app.operations(app.sites)
	q := r.URL.Query()
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
			return apiErr(badInput("%s: %q is not a number", p.name, v))
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
		if _, err := o.ExportAudit(r.Context(), aq, f, w); err != nil {
			return apiErr(err)
		}
		return nil
	}
	evs, err := o.Audit(r.Context(), aq)
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
