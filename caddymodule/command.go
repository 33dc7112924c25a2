package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/session"
	"github.com/latchkeyhq/latchkey/internal/store"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "latchkey",
		Usage: "<users|sessions|audit> <verb> [--config <path>] [--adapter <name>] [--json]",
		Short: "Manages latchkey's users, sessions and audit trail",
		Long: `
Works directly on the store named in the config (the latchkey global option's
storage, or the default under Caddy's data directory), so Caddy need not be
running. With no --config, a Caddyfile in the current directory is used if
there is one.`,
		CobraFunc: buildCommand,
	})
}

func buildCommand(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringP("config", "c", "", "Caddy config whose latchkey store to use")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply")
	pf.Bool("json", false, "Print JSON instead of a table")

	users := &cobra.Command{Use: "users", Short: "Adds, lists, activates and deactivates users"}
	add := &cobra.Command{
		Use:   "add --email <address> [--name <name>] [--phone <phone>] [--site <host>] [--role <role>]...",
		Short: "Adds an active user",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o ops, _ []string) error {
			f := c.Flags()
			var in newUser
			in.Email, _ = f.GetString("email")
			in.Name, _ = f.GetString("name")
			in.Phone, _ = f.GetString("phone")
			in.Site, _ = f.GetString("site")
			in.Roles, _ = f.GetStringSlice("role")
			if in.Email == "" {
				return fmt.Errorf("--email is required")
			}
			u, err := o.addUser(c.Context(), in)
			if err != nil {
				return err
			}
			return printUsers(c, []store.User{*u})
		}),
	}
	add.Flags().String("email", "", "Email address (required)")
	add.Flags().String("name", "", "Full name")
	add.Flags().String("phone", "", "Phone number")
	add.Flags().String("site", "", "Host name the user belongs to (empty: every site)")
	add.Flags().StringSlice("role", nil, "Role to grant, e.g. staff (repeatable)")

	list := &cobra.Command{
		Use:   "list",
		Short: "Lists users",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o ops, _ []string) error {
			us, err := o.st.Users(c.Context())
			if err != nil {
				return err
			}
			return printUsers(c, us)
		}),
	}
	setActive := func(verb string, active bool) *cobra.Command {
		sc := &cobra.Command{
			Use:   verb + " <email|id>",
			Short: strings.ToUpper(verb[:1]) + verb[1:] + "s a user",
			Args:  cobra.ExactArgs(1),
			RunE: withOps(func(c *cobra.Command, o ops, args []string) error {
				site, _ := c.Flags().GetString("site")
				u, err := o.setActive(c.Context(), args[0], site, active)
				if err != nil {
					return err
				}
				return printUsers(c, []store.User{*u})
			}),
		}
		sc.Flags().String("site", "", "Site of the user, when the email exists on several")
		return sc
	}
	users.AddCommand(add, list, setActive("activate", true), setActive("deactivate", false))

	sessions := &cobra.Command{Use: "sessions", Short: "Lists and revokes gateway sessions"}
	slist := &cobra.Command{
		Use:   "list [--user <email|id>] [--all]",
		Short: "Lists sessions (active ones unless --all)",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o ops, _ []string) error {
			user, _ := c.Flags().GetString("user")
			all, _ := c.Flags().GetBool("all")
			ss, err := o.sessions(c.Context(), user, all)
			if err != nil {
				return err
			}
			return printSessions(c, ss)
		}),
	}
	slist.Flags().String("user", "", "Only this user's sessions")
	slist.Flags().Bool("all", false, "Include ended sessions")
	srevoke := &cobra.Command{
		Use:   "revoke <session-id>",
		Short: "Ends a session at once",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o ops, args []string) error {
			if err := o.revokeSession(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "revoked session %s\n", args[0])
			return nil
		}),
	}
	screate := &cobra.Command{
		Use:   "create --user <email|id>",
		Short: "Starts a session for a user and prints its cookie (for testing and support)",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o ops, _ []string) error {
			user, _ := c.Flags().GetString("user")
			if user == "" {
				return fmt.Errorf("--user is required")
			}
			u, err := o.resolveUser(c.Context(), user, "")
			if err != nil {
				return err
			}
			secret, err := o.app.loadSecret(c.Context(), caddy.NewReplacer(), o.st)
			if err != nil {
				return err
			}
			var cfg session.Config
			if lt, _ := c.Flags().GetDuration("lifetime"); lt > 0 {
				cfg.Lifetime = lt
			}
			token, s, err := session.New(o.st, secret, cfg, nil, o.now).Start(c.Context(), u.ID, "cli", "", "", "caddy latchkey sessions create")
			if err != nil {
				return err
			}
			cookieName, _ := c.Flags().GetString("cookie")
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), map[string]any{"session": toSessionJSON(s), "cookie": cookieName + "=" + token})
			}
			fmt.Fprintf(c.OutOrStdout(), "session %s for user %d (%s), until %s\nCookie: %s=%s\n",
				s.ID, u.ID, u.Email, timeOrDash(s.ExpiresAt), cookieName, token)
			return nil
		}),
	}
	screate.Flags().String("user", "", "User to start the session for")
	screate.Flags().String("cookie", gate.DefaultCookieName, "Cookie name the route uses")
	screate.Flags().Duration("lifetime", 0, "Absolute lifetime (default 720h)")
	sessions.AddCommand(slist, screate, srevoke)

	auditCmd := &cobra.Command{Use: "audit", Short: "Reads the audit trail"}
	alist := &cobra.Command{
		Use:   "list [--since 1h] [--user <email|id>] [--kind <kind>] [--outcome accepted|refused] [--limit N]",
		Short: "Lists audit records, newest first",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o ops, _ []string) error {
			f := c.Flags()
			var q auditQuery
			q.Since, _ = f.GetString("since")
			q.User, _ = f.GetString("user")
			q.Kind, _ = f.GetString("kind")
			q.Outcome, _ = f.GetString("outcome")
			q.Limit, _ = f.GetInt("limit")
			evs, err := o.audit(c.Context(), q)
			if err != nil {
				return err
			}
			return printAudit(c, evs)
		}),
	}
	alist.Flags().String("since", "", "Only records newer than this, e.g. 15m, 1h, 7d")
	alist.Flags().String("user", "", "Only this user's records")
	alist.Flags().String("kind", "", "Only this credential kind: session, invite, ticket, link")
	alist.Flags().String("outcome", "", "Only accepted or refused")
	alist.Flags().Int("limit", 100, "At most this many records")
	auditCmd.AddCommand(alist)

	cmd.AddCommand(users, sessions, auditCmd)
}

// withOps opens the store named by --config/--adapter for one command and
// closes it after.
func withOps(fn func(c *cobra.Command, o ops, args []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		c.SilenceUsage = true
		configFile, _ := c.Flags().GetString("config")
		adapter, _ := c.Flags().GetString("adapter")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.SetContext(ctx)
		app, st, err := openConfiguredStore(ctx, configFile, adapter)
		if err != nil {
			return err
		}
		defer st.Close()
		return fn(c, ops{st: st, now: time.Now, app: app}, args)
	}
}

// openConfiguredStore opens the store that the latchkey app of a Caddy
// config uses, without starting Caddy.
func openConfiguredStore(ctx context.Context, configFile, adapter string) (*App, store.Store, error) {
	app, err := appFromConfig(configFile, adapter)
	if err != nil {
		return nil, nil, err
	}
	driver, target, err := app.storageTarget(caddy.NewReplacer())
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, driver, target)
	return app, st, err
}

func appFromConfig(configFile, adapter string) (*App, error) {
	cfgJSON, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return nil, err
	}
	app := new(App)
	if len(cfgJSON) == 0 {
		return app, nil
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", configFile, err)
	}
	if raw := cfg.Apps["latchkey"]; raw != nil {
		if err := json.Unmarshal(raw, app); err != nil {
			return nil, fmt.Errorf("reading latchkey app config from %s: %w", configFile, err)
		}
	}
	return app, nil
}

func wantJSON(c *cobra.Command) bool {
	j, _ := c.Flags().GetBool("json")
	return j
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printUsers(c *cobra.Command, us []store.User) error {
	out := c.OutOrStdout()
	if wantJSON(c) {
		js := make([]userJSON, len(us))
		for i := range us {
			js[i] = toUserJSON(&us[i])
		}
		return writeJSON(out, js)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tSITE\tNAME\tPHONE\tACTIVE\tROLES\tLOGINS\tLAST LOGIN")
	for _, u := range us {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%t\t%s\t%d\t%s\n", u.ID, u.Email, dash(u.Site), dash(u.Name), dash(u.Phone),
			u.Active, dash(strings.Join(u.Roles, ",")), u.LoginCount, timeOrDash(u.CurrentLoginAt))
	}
	return tw.Flush()
}

func printSessions(c *cobra.Command, ss []store.Session) error {
	out := c.OutOrStdout()
	if wantJSON(c) {
		js := make([]sessionJSON, len(ss))
		for i := range ss {
			js[i] = toSessionJSON(&ss[i])
		}
		return writeJSON(out, js)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tSTARTED\tLAST SEEN\tEXPIRES\tREVOKED\tIP\tVIA")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.UserID, timeOrDash(s.CreatedAt), timeOrDash(s.LastSeenAt),
			timeOrDash(s.ExpiresAt), timeOrDash(s.RevokedAt), dash(s.IP), dash(s.Kind))
	}
	return tw.Flush()
}

func printAudit(c *cobra.Command, evs []store.AuditEvent) error {
	out := c.OutOrStdout()
	if wantJSON(c) {
		js := make([]auditJSON, len(evs))
		for i := range evs {
			js[i] = toAuditJSON(&evs[i])
		}
		return writeJSON(out, js)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tOUTCOME\tREASON\tUSER\tSTATUS\tMETHOD\tHOST\tPATH\tCLIENT IP\tBROWSER\tOS\tDEVICE")
	for _, e := range evs {
		user := "-"
		if e.UserID != 0 {
			user = fmt.Sprint(e.UserID)
		}
		browser := strings.TrimSpace(e.UABrowser + " " + e.UAVersion)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", timeOrDash(e.Time), e.Kind, e.Outcome, dash(e.Reason),
			user, e.Status, e.Method, e.Host, e.Path, dash(e.ClientIP), dash(browser), dash(e.UAOS), dash(e.UADevice))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}
