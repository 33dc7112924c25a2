package gate

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/web"
)

// AdminRole may see the site's dashboard.
const AdminRole = "admin"

type dashboardPage struct {
	Title, Site, Email, Generated string
}

// serveDashboard shows the site's administrators what the gateway sees of
// their site. Everything on it is read for this site only: a role on
// another site opens nothing here, and nothing of another site is shown.
func (g *Gate) serveDashboard(rq *Request) error {
	w, r, ev := rq.W, rq.R, &rq.Ev
	ev.Kind = "dashboard"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil
	}
	su, reason, err := g.d.Sessions.Check(r.Context(), g.cookie(r))
	if err != nil {
		g.d.Logger.Error("checking session", zap.Error(err))
		return g.refuse(rq, storeError().Refused)
	}
	if reason != "" {
		return g.refuse(rq, &Refusal{Status: http.StatusUnauthorized, Reason: reason})
	}
	ev.UserID, ev.SessionID, ev.CredentialID = su.UserID, su.ID, su.ID
	// The cached user, as `require role` reads it: a role taken away holds
	// within a second on every gateway.
	u, err := g.linkUser(r.Context(), su.UserID)
	if err != nil {
		g.d.Logger.Error("looking up the signed-in user", zap.Error(err))
		return g.refuse(rq, storeError().Refused)
	}
	if !u.HasRole(g.site.Name, AdminRole) {
		return g.refuse(rq, &Refusal{Status: http.StatusForbidden, Reason: ReasonMissingRole})
	}
	now := g.d.Now()
	page := dashboardPage{Title: "Dashboard", Site: g.site.Name, Email: u.Email, Generated: now.UTC().Format(time.DateTime)}
	return g.d.Pages.Render(w, http.StatusOK, web.PageDashboard, page)
}
