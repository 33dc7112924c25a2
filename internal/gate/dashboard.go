package gate

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/latchkeyhq/latchkey/internal/site"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/web"
	"github.com/latchkeyhq/latchkey/internal/web/chart"
)

// AdminRole may see the site's dashboard.
const AdminRole = "admin"

// How much the dashboard shows.
const (
	dashRows = 10 // rows of each list
	dashTop  = 5  // refused addresses and reasons
	dashDays = 7  // the long chart, in days; the short one is the last day
)

// The charts' series, accepted below refused. Blue and orange stay apart
// for readers who cannot tell red from green.
var dashSeries = []chart.Series{
	{Key: store.OutcomeAccepted, Label: "Accepted", Color: "#2563eb"},
	{Key: store.OutcomeRefused, Label: "Refused", Color: "#ea580c"},
}

type dashboardPage struct {
	Chrome
	Title, Site, Email, Generated string
	// AuditNote, when set, says why the site's attempts are not shown.
	AuditNote string
	Series    []chart.Series
	Day, Week template.HTML
	// Accepted and Refused count the attempts of the last 24 hours.
	Accepted, Refused  int64
	TopIPs, TopReasons []store.Tally
	ActiveSessions     int
	Logins             []dashLogin
	Pending, Failed    int
	Sent               int
	Mails              []dashMail
}

// dashLogin is a sign-in: a session the site started, and how it is now.
type dashLogin struct {
	User, Kind, Started, LastSeen, IP, Browser, OS, State string
}

type dashMail struct {
	Created, Kind, To, State, Error string
	Attempts                        int
}

// serveDashboard shows the site's administrators what the gateway sees of
// their site: attempts by hour, what is refused and from where, sign-ins,
// live sessions and the mail outbox. Everything on it is read for this
// site only: a role on another site opens nothing here, and nothing of
// another site is shown. It changes nothing, so a view is not audited; a
// refused one is, as on the other pages.
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
	page, err := g.dashboard(r.Context(), g.d.Now())
	if err != nil {
		g.d.Logger.Error("reading the dashboard's figures", zap.Error(err))
		return g.refuse(rq, storeError().Refused)
	}
	page.Email = u.Email
	page.Chrome = g.chrome(r)
	return g.d.Pages.Render(w, http.StatusOK, web.PageDashboard, page)
}

// dashboard reads the site's figures as of now.
func (g *Gate) dashboard(ctx context.Context, now time.Time) (*dashboardPage, error) {
	st, name := g.d.Store, g.site.Name
	p := &dashboardPage{Title: "Dashboard", Site: name, Generated: now.UTC().Format(time.DateTime), Series: dashSeries}

	// Whole hours, the current one last, so that a bar is always one hour.
	end := now.UTC().Truncate(time.Hour).Add(time.Hour)
	if hosts, ok := g.auditHosts(); !ok {
		p.AuditNote = "This site answers for any host and has no origin, so its attempts cannot be told from other sites' in the audit trail. Give its latchkey handler an origin (or its site block host names) to see them here."
	} else {
		week := store.StatsQuery{Hosts: hosts, Since: end.Add(-dashDays * 24 * time.Hour), Until: end, Step: time.Hour}
		buckets, err := st.AuditHistogram(ctx, week)
		if err != nil {
			return nil, err
		}
		hours := make([][]int64, dashDays*24)
		for i := range hours {
			hours[i] = make([]int64, len(dashSeries))
		}
		for _, b := range buckets {
			i := int(b.Start.Sub(week.Since) / time.Hour)
			for j, s := range dashSeries {
				if s.Key == b.Outcome && i >= 0 && i < len(hours) {
					hours[i][j] += b.Count
				}
			}
		}
		day := hours[len(hours)-24:]
		for _, h := range day {
			p.Accepted += h[0]
			p.Refused += h[1]
		}
		p.Day = hourChart("day", "Attempts per hour, last 24 hours", week.Until.Add(-24*time.Hour), day, func(t time.Time) string {
			if t.Hour()%6 == 0 {
				return t.Format("15:04")
			}
			return ""
		})
		p.Week = hourChart("week", "Attempts per hour, last 7 days", week.Since, hours, func(t time.Time) string {
			if t.Hour() == 0 {
				return t.Format("Jan 2")
			}
			return ""
		})
		refused := store.StatsQuery{Hosts: hosts, Since: end.Add(-24 * time.Hour), Until: end, Outcome: store.OutcomeRefused}
		if p.TopIPs, err = st.AuditTop(ctx, refused, store.TallyClientIP, dashTop); err != nil {
			return nil, err
		}
		if p.TopReasons, err = st.AuditTop(ctx, refused, store.TallyReason, dashTop); err != nil {
			return nil, err
		}
	}

	idle := g.d.Sessions.Config().Idle
	var err error
	if p.ActiveSessions, err = st.CountSessions(ctx, name, now, now.Add(-idle)); err != nil {
		return nil, err
	}
	ss, err := st.Sessions(ctx, store.SessionFilter{Site: name, Limit: dashRows})
	if err != nil {
		return nil, err
	}
	emails := map[int64]string{}
	for _, s := range ss {
		email, ok := emails[s.UserID]
		if !ok {
			switch u, err := g.linkUser(ctx, s.UserID); {
			case err == nil:
				email = u.Email
			case errors.Is(err, store.ErrNotFound):
				email = "user " + strconv.FormatInt(s.UserID, 10) + " (deleted)"
			default:
				return nil, err
			}
			emails[s.UserID] = email
		}
		ua := store.AuditEvent{UserAgent: s.UserAgent}
		g.d.Audit.Describe(&ua)
		browser := orUnknown(ua.UABrowser)
		if ua.UAVersion != "" {
			browser += " " + ua.UAVersion
		}
		state := "active"
		switch {
		case !s.RevokedAt.IsZero():
			state = "ended"
		case !s.ExpiresAt.After(now):
			state = "expired"
		case s.LastSeenAt.Add(idle).Before(now):
			state = "idle"
		}
		p.Logins = append(p.Logins, dashLogin{User: email, Kind: orUnknown(s.Kind), Started: dashTime(s.CreatedAt),
			LastSeen: dashTime(s.LastSeenAt), IP: orUnknown(s.IP), Browser: browser, OS: orUnknown(ua.UAOS), State: state})
	}

	counts, err := st.MailCounts(ctx, name)
	if err != nil {
		return nil, err
	}
	p.Pending, p.Failed, p.Sent = counts[store.MailQueued]+counts[store.MailSending], counts[store.MailFailed], counts[store.MailSent]
	mails, err := st.SiteMails(ctx, name, dashRows)
	if err != nil {
		return nil, err
	}
	for _, m := range mails {
		p.Mails = append(p.Mails, dashMail{Created: dashTime(m.CreatedAt), Kind: m.Kind, To: m.To, State: m.State,
			Attempts: m.Attempts, Error: truncate(m.LastError, 160)})
	}
	return p, nil
}

// auditHosts are the hosts whose audit records are the site's. The trail
// keeps each request's host, not its site: a site without host names is
// known by its origin's host, and one without either cannot be told apart
// (ok false), so that nothing of another site is shown.
func (g *Gate) auditHosts() (hosts []string, ok bool) {
	if len(g.site.Hosts) > 0 {
		return g.site.Hosts, true
	}
	if h := site.HostOf(g.site.OriginHost()); h != "" {
		return []string{h}, true
	}
	return nil, false
}

// hourChart draws hours[i], the counts of each series in the hour from
// since+i hours, labelling the hours tick names.
func hourChart(id, title string, since time.Time, hours [][]int64, tick func(time.Time) string) template.HTML {
	c := chart.Chart{ID: id, Title: title, Series: dashSeries, Empty: "No attempts in this period"}
	var totals [2]int64
	for i, h := range hours {
		start := since.Add(time.Duration(i) * time.Hour)
		totals[0] += h[0]
		totals[1] += h[1]
		c.Bars = append(c.Bars, chart.Bar{
			Values: h,
			Title:  fmt.Sprintf("%s–%s UTC: %d accepted, %d refused", start.Format("Jan 2 15:04"), start.Add(time.Hour).Format("15:04"), h[0], h[1]),
			Tick:   tick(start),
			Data:   map[string]string{"start": start.Format(time.RFC3339)},
		})
	}
	c.Desc = fmt.Sprintf("Bars of accepted and refused attempts per hour, from %s to %s UTC: %d accepted, %d refused in all.",
		since.Format("Jan 2 15:04"), since.Add(time.Duration(len(hours))*time.Hour).Format("Jan 2 15:04"), totals[0], totals[1])
	return c.SVG()
}

func dashTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// truncate keeps at most n bytes of s, cut at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
