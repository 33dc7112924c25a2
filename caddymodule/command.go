package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/latchkeyhq/latchkey/internal/gate"
	"github.com/latchkeyhq/latchkey/internal/link"
	"github.com/latchkeyhq/latchkey/internal/ops"
	"github.com/latchkeyhq/latchkey/internal/store"
	"github.com/latchkeyhq/latchkey/internal/ticket"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "latchkey",
		Usage: "<users|roles|sessions|invites|links|tickets|audit|mail|backup|secret|store|janitor> <verb> [--config <path>] [--adapter <name>] [--json]",
		Short: "Manages latchkey's users, credentials, audit trail and store",
		Long: `
Works on the store of the config (--config; with none, a Caddyfile in the
current directory). When that config's admin endpoint answers and runs
latchkey on the same storage setting, the command is sent there, as caddy
reload sends a config, and runs in the gateway on its store. Otherwise it
opens the store itself (Caddy need not be running), but never creates one:
a store file that does not exist is an error naming it. Either way it says
on stderr which store it used.`,
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
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			f := c.Flags()
			var in ops.NewUser
			in.Email, _ = f.GetString("email")
			in.Name, _ = f.GetString("name")
			in.Phone, _ = f.GetString("phone")
			in.Site, _ = f.GetString("site")
			in.Roles, _ = f.GetStringSlice("role")
			if in.Email == "" {
				return fmt.Errorf("--email is required")
			}
			u, err := o.AddUser(c.Context(), in)
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
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			us, err := o.Users(c.Context())
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
			RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
				site, _ := c.Flags().GetString("site")
				u, err := o.SetActive(c.Context(), args[0], site, active)
				if err != nil {
					return err
				}
				return printUsers(c, []store.User{*u})
			}),
		}
		sc.Flags().String("site", "", "Site of the user, when the email exists on several")
		return sc
	}
	show := &cobra.Command{
		Use:   "show <email|id> [--site <host>]",
		Short: "Shows a user: roles, logins (current and previous, with addresses) and their count",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			site, _ := c.Flags().GetString("site")
			u, err := o.ResolveUser(c.Context(), args[0], site)
			if err != nil {
				return err
			}
			return printUsers(c, []store.User{*u})
		}),
	}
	show.Flags().String("site", "", "Site of the user, when the email exists on several")
	users.AddCommand(add, list, show, setActive("activate", true), setActive("deactivate", false), importCommand())

	sessions := &cobra.Command{Use: "sessions", Short: "Lists and revokes gateway sessions"}
	slist := &cobra.Command{
		Use:   "list [--user <email|id>] [--all]",
		Short: "Lists sessions (active ones unless --all)",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			user, _ := c.Flags().GetString("user")
			all, _ := c.Flags().GetBool("all")
			ss, err := o.Sessions(c.Context(), user, all)
			if err != nil {
				return err
			}
			return printSessions(c, ss)
		}),
	}
	slist.Flags().String("user", "", "Only this user's sessions")
	slist.Flags().Bool("all", false, "Include ended sessions")
	srevoke := &cobra.Command{
		Use:   "revoke <session-id> | --user <email|id> --all",
		Short: "Ends a session at once, or every session of a user (--user … --all)",
		Args:  cobra.MaximumNArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			user, _ := c.Flags().GetString("user")
			all, _ := c.Flags().GetBool("all")
			switch {
			case len(args) == 1 && user == "" && !all:
				return printRevoked(c)(o.RevokeSession(c.Context(), args[0]))
			case len(args) == 0 && user != "" && all:
				site, _ := c.Flags().GetString("site")
				return printRevoked(c)(o.RevokeUserSessions(c.Context(), user, site))
			}
			return fmt.Errorf("give a session id, or --user <email|id> --all")
		}),
	}
	srevoke.Flags().String("user", "", "With --all: end every session of this user")
	srevoke.Flags().Bool("all", false, "End every session of --user")
	srevoke.Flags().String("site", "", "Site of the user, when the email exists on several")
	screate := &cobra.Command{
		Use:   "create --user <email|id>",
		Short: "Starts a session for a user and prints its cookie (for testing and support)",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			user, _ := c.Flags().GetString("user")
			if user == "" {
				return fmt.Errorf("--user is required")
			}
			var lifetime time.Duration
			if l, _ := c.Flags().GetString("lifetime"); l != "" {
				// Days as everywhere else in latchkey: 7d, 12h, 90m.
				d, err := ops.ParseDuration(l)
				if err != nil || d <= 0 {
					return fmt.Errorf("--lifetime: bad duration %q (want e.g. 7d, 12h)", l)
				}
				lifetime = d
			}
			site, _ := c.Flags().GetString("site")
			token, s, u, err := o.StartSession(c.Context(), user, site, lifetime, "caddy latchkey sessions create")
			if err != nil {
				return err
			}
			cookieName, _ := c.Flags().GetString("cookie")
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), map[string]any{"session": ops.ToSessionJSON(s), "cookie": cookieName + "=" + token})
			}
			fmt.Fprintf(c.OutOrStdout(), "session %s for user %d (%s), until %s\nCookie: %s=%s\n",
				s.ID, u.ID, u.Email, timeOrDash(s.ExpiresAt), cookieName, token)
			return nil
		}),
	}
	screate.Flags().String("user", "", "User to start the session for")
	screate.Flags().String("site", "", "Site the session is for (default: the user's, or the config's only site)")
	screate.Flags().String("cookie", gate.DefaultCookieName, "Cookie name the route uses")
	screate.Flags().String("lifetime", "", "Absolute lifetime, e.g. 7d or 12h (default 30d)")
	sessions.AddCommand(slist, screate, srevoke)

	auditCmd := &cobra.Command{Use: "audit", Short: "Reads the audit trail"}
	alist := &cobra.Command{
		Use:   "list [--since 1h] [--user <email|id>] [--kind <kind>] [--outcome accepted|refused] [--reason <reason>] [--ip <address>] [--session <id>] [--site <site>] [--before <id>] [--limit N]",
		Short: "Lists audit records, newest first (--before the last id shown for the next page)",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			q := auditQueryFlags(c)
			q.Limit, _ = c.Flags().GetInt("limit")
			evs, err := o.Audit(c.Context(), q)
			if err != nil {
				return err
			}
			return printAudit(c, evs)
		}),
	}
	addAuditQueryFlags(alist)
	alist.Flags().Int("limit", 100, "At most this many records")
	aexport := &cobra.Command{
		Use:   "export --format jsonl|csv [--since 7d] [filters as for list]",
		Short: "Writes every record the filters select to stdout, newest first, as JSON Lines or CSV",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			format, _ := c.Flags().GetString("format")
			_, err := o.ExportAudit(c.Context(), auditQueryFlags(c), format, c.OutOrStdout())
			return err
		}),
	}
	addAuditQueryFlags(aexport)
	aexport.Flags().String("format", "jsonl", "jsonl or csv")
	auditCmd.AddCommand(alist, aexport)

	cmd.AddCommand(users, rolesCommand(), sessions, auditCmd, invitesCommand(), linksCommand(), ticketsCommand(), mailCommand(), janitorCommand())
	cmd.AddCommand(storeCommand())
	for _, sub := range moreCommands {
		cmd.AddCommand(sub())
	}
	sendToGateway(cmd)
}

// moreCommands and moreLinksCommands are filled by init functions of the
// files that define further commands, so each command lives in its own file.
var moreCommands, moreLinksCommands []func() *cobra.Command

// cliEnv is what a command knows from its config.
type cliEnv struct {
	app   *App
	sites []ops.SiteConf
	// running: the command runs inside the gateway (sent through the admin
	// API), on the running app's store, which it must not close.
	running bool
}

// cliEnvOf is the command's environment: the running app's when the
// command came through the admin API, else read from --config/--adapter.
func cliEnvOf(c *cobra.Command) (cliEnv, error) {
	if app := runningApp(c.Context()); app != nil {
		return cliEnv{app: app, sites: app.sites, running: true}, nil
	}
	configFile, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	return loadCLIEnv(configFile, adapter)
}

// commandContext is the context a command works in: the admin request's
// inside the gateway, else a fresh one.
func commandContext(c *cobra.Command) context.Context {
	if ctx := c.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// withOps opens the store named by --config/--adapter for one command and
// closes it after; inside the gateway it uses the running app's operations.
func withOps(fn func(c *cobra.Command, o *ops.Ops, args []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		c.SilenceUsage = true
		ctx, cancel := context.WithTimeout(commandContext(c), 2*time.Minute)
		defer cancel()
		c.SetContext(ctx)
		env, err := cliEnvOf(c)
		if err != nil {
			return err
		}
		if env.running {
			o := env.app.operations(env.sites)
			if env.app.mailer != nil {
				// As from the CLI: `invites create --send` says whether
				// the mail went, instead of leaving it to the outbox.
				m := *env.app.mailer
				m.SendNow = true
				o.Mailer = &m
			}
			return fn(c, o, args)
		}
		configFile, _ := c.Flags().GetString("config")
		repl := caddy.NewReplacer()
		st, err := env.openStore(ctx, repl, configFile)
		if err != nil {
			return err
		}
		defer st.Close()
		secret, err := env.app.loadSecret(ctx, repl, st)
		if err != nil {
			return err
		}
		env.app.secret = secret
		o := &ops.Ops{
			Store: st, Now: time.Now, Secret: secret, Sites: env.sites,
			// Built when a command needs them, so that a bad key fails only
			// the commands that sign.
			LoadRing:         func() (*link.KeyRing, error) { return env.app.linkKeyRing(repl) },
			LoadTicketHasher: func() (*ticket.Hasher, error) { return ticket.NewHasher(secret, env.app.Argon2.params()) },
		}
		if m, err := env.app.newMailer(repl, st); err != nil {
			return err
		} else if m != nil {
			m.SendNow = true // no outbox worker runs in the CLI
			o.Mailer = m
		}
		return fn(c, o, args)
	}
}

func loadCLIEnv(configFile, adapter string) (cliEnv, error) {
	cfgJSON, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return cliEnv{}, err
	}
	env := cliEnv{app: new(App)}
	if len(cfgJSON) == 0 {
		return env, nil
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return cliEnv{}, fmt.Errorf("reading config %s: %w", configFile, err)
	}
	if raw := cfg.Apps["latchkey"]; raw != nil {
		if err := json.Unmarshal(raw, env.app); err != nil {
			return cliEnv{}, fmt.Errorf("reading latchkey app config from %s: %w", configFile, err)
		}
	}
	if env.sites, err = latchkeySites(cfgJSON); err != nil {
		return cliEnv{}, err
	}
	env.storeOfGateway(cfgJSON)
	return env, nil
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
		js := ops.ToJSON(us, ops.ToUserJSON)
		return writeJSON(out, js)
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "ID\tEMAIL\tSITE\tNAME\tPHONE\tACTIVE\tROLES\tPASSWORD\tLOGINS\tLAST LOGIN\tFROM\tPREVIOUS LOGIN\tFROM")
	for _, u := range us {
		js := ops.ToUserJSON(&u)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", u.ID, cell(u.Email), dash(u.Site), dash(cell(u.Name)), dash(cell(u.Phone)),
			u.Active, dash(strings.Join(js.Roles, ",")), dash(js.PasswordScheme), u.LoginCount, timeOrDash(u.CurrentLoginAt), dash(u.CurrentLoginIP),
			timeOrDash(u.LastLoginAt), dash(u.LastLoginIP))
	}
	return tw.Flush()
}

func printSessions(c *cobra.Command, ss []store.Session) error {
	out := c.OutOrStdout()
	if wantJSON(c) {
		js := ops.ToJSON(ss, ops.ToSessionJSON)
		return writeJSON(out, js)
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "ID\tUSER\tSTARTED\tLAST SEEN\tEXPIRES\tREVOKED\tIP\tVIA")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(s.ID), s.UserID, timeOrDash(s.CreatedAt), timeOrDash(s.LastSeenAt),
			timeOrDash(s.ExpiresAt), timeOrDash(s.RevokedAt), dash(s.IP), dash(s.Kind))
	}
	return tw.Flush()
}

func printAudit(c *cobra.Command, evs []store.AuditEvent) error {
	out := c.OutOrStdout()
	if wantJSON(c) {
		js := ops.ToJSON(evs, ops.ToAuditJSON)
		return writeJSON(out, js)
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "TIME\tKIND\tOUTCOME\tREASON\tCOUNT\tUSER\tSTATUS\tMETHOD\tHOST\tPATH\tCLIENT IP\tBROWSER\tOS\tDEVICE")
	for _, e := range evs {
		user := "-"
		if e.UserID != 0 {
			user = fmt.Sprint(e.UserID)
		}
		browser := strings.TrimSpace(e.UABrowser + " " + e.UAVersion)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", timeOrDash(e.Time), cell(e.Kind), cell(e.Outcome), dash(e.Reason),
			max(e.Count, 1), user, e.Status, cell(e.Method), cell(e.Host), cell(e.Path), dash(e.ClientIP), dash(browser), dash(e.UAOS), dash(e.UADevice))
	}
	return tw.Flush()
}

// newTable aligns the CLI's tables the same way everywhere.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// dash is a table cell that may be empty; like every cell, it goes
// through cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return cell(s)
}

// timeOrDash shows a time in UTC, marked so (Z): tables are read by
// operators in several time zones and pasted into tickets.
func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// isTerminal reports whether stdin is a person at a terminal; tests replace it.
var isTerminal = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// askInvite asks a person at a terminal what `invites create` was not
// given, before the command runs (here or in the gateway), and turns the
// answers into its flags.
func askInvite(c *cobra.Command, _ []string) error {
	f := c.Flags()
	send, _ := f.GetBool("send")
	noSend, _ := f.GetBool("no-send")
	if send && noSend {
		return fmt.Errorf("--send and --no-send cannot both be given")
	}
	if runningApp(c.Context()) != nil || !isTerminal() {
		return nil
	}
	in := bufio.NewReader(c.InOrStdin())
	email, _ := f.GetString("email")
	if email == "" {
		fmt.Fprint(c.OutOrStdout(), "Email address of the person to invite: ")
		line, _ := in.ReadString('\n')
		email = strings.TrimSpace(line)
		if err := f.Set("email", email); err != nil {
			return err
		}
	}
	if send || noSend {
		return nil
	}
	env, err := cliEnvOf(c)
	if err != nil || env.app.SMTP == nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "Send the invite to %s now? [y/N] ", email)
	line, _ := in.ReadString('\n')
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(line)), "y") {
		return f.Set("send", "true")
	}
	return nil
}

func invitesCommand() *cobra.Command {
	invites := &cobra.Command{Use: "invites", Short: "Creates, lists, sends and revokes invite codes"}
	create := &cobra.Command{
		Use:   "create [--email <address>] [--name <name>] [--phone <phone>] [--domain <host>] [--send | --no-send]",
		Short: "Creates an invite and prints (or mails) its code",
		Long: `
Creates an invite for one person to one site. The code is shown once: only a
keyed hash of it is stored. With no --email at a terminal, asks for one; with
neither --send nor --no-send at a terminal, asks whether to mail it now.`,
		Args:    cobra.NoArgs,
		PreRunE: askInvite,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			f := c.Flags()
			var in ops.NewInvite
			in.Email, _ = f.GetString("email")
			in.Name, _ = f.GetString("name")
			in.Phone, _ = f.GetString("phone")
			in.Domain, _ = f.GetString("domain")
			in.Send, _ = f.GetBool("send")
			if in.Email == "" {
				return fmt.Errorf("--email is required")
			}
			s, err := o.PickSite(in.Domain)
			if err != nil {
				return err
			}
			out, err := o.CreateInvite(c.Context(), s, in, "cli")
			if err != nil {
				return err
			}
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), out)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "Invite %d for %s on %s\n", out.ID, out.Email, out.Site)
			fmt.Fprintf(w, "Code:  %s   (shown once)\n", out.Code)
			fmt.Fprintf(w, "Login: %s\n", out.LoginURL)
			switch {
			case out.Sent != nil && *out.Sent:
				fmt.Fprintf(w, "Mailed to %s.\n", out.Email)
			case out.Sent != nil:
				fmt.Fprintf(w, "Not mailed: %s\nThe invite is kept; resend it with: caddy latchkey invites send %d\n", out.SendError, out.ID)
				return fmt.Errorf("invite %d created but not sent", out.ID)
			}
			return nil
		}),
	}
	create.Flags().String("email", "", "Email address of the invitee")
	create.Flags().String("name", "", "Full name")
	create.Flags().String("phone", "", "Phone number")
	create.Flags().String("domain", "", "Site (host name) the code works on; default: the config's only site with invites")
	create.Flags().Bool("send", false, "Mail the code now")
	create.Flags().Bool("no-send", false, "Do not mail the code; just print it")

	list := &cobra.Command{
		Use:   "list [--domain <host>]",
		Short: "Lists invites, newest first",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			domain, _ := c.Flags().GetString("domain")
			invs, err := o.Invites(c.Context(), domain)
			if err != nil {
				return err
			}
			if wantJSON(c) {
				js := ops.ToJSON(invs, o.ToInviteJSON)
				return writeJSON(c.OutOrStdout(), js)
			}
			tw := newTable(c.OutOrStdout())
			fmt.Fprintln(tw, "ID\tSITE\tEMAIL\tNAME\tSTATE\tCREATED\tFIRST USED\tUSES\tUSER\tSENT\tUNTIL")
			for i := range invs {
				inv := &invs[i]
				j := o.ToInviteJSON(inv)
				sent := timeOrDash(inv.SentAt)
				if inv.SendError != "" {
					sent = "failed: " + inv.SendError
				}
				user := "-"
				if inv.UserID != 0 {
					user = fmt.Sprint(inv.UserID)
				}
				until := optTimeText(j.ExpiresAt)
				if j.State == "revoked" {
					until = timeOrDash(inv.RevokedAt)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", inv.ID, cell(inv.Site), cell(inv.Email), dash(inv.Name), j.State,
					timeOrDash(inv.CreatedAt), timeOrDash(inv.FirstUsedAt), inv.UseCount, user, cell(sent), until)
			}
			return tw.Flush()
		}),
	}
	list.Flags().String("domain", "", "Only invites for this site")

	revoke := &cobra.Command{
		Use:   "revoke <id>",
		Short: "Revokes an invite and ends the sessions it started",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			return printRevoked(c)(o.RevokeInvite(c.Context(), args[0]))
		}),
	}
	send := &cobra.Command{
		Use:   "send <id>",
		Short: "Mails an invite again, with a new code (the old one stops working)",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			out, err := o.SendInvite(c.Context(), args[0])
			if err != nil {
				return err
			}
			if wantJSON(c) {
				if err := writeJSON(c.OutOrStdout(), out); err != nil {
					return err
				}
			} else if *out.Sent {
				fmt.Fprintf(c.OutOrStdout(), "Mailed a new code for invite %d to %s.\n", out.ID, out.Email)
			} else {
				fmt.Fprintf(c.OutOrStdout(), "Not mailed: %s\nNew code: %s (the old one no longer works)\n", out.SendError, out.Code)
			}
			if !*out.Sent {
				return fmt.Errorf("invite %d not sent", out.ID)
			}
			return nil
		}),
	}
	invites.AddCommand(create, list, revoke, send)
	return invites
}

func linksCommand() *cobra.Command {
	links := &cobra.Command{Use: "links", Short: "Mints, lists, shows and revokes signed links"}
	create := &cobra.Command{
		Use:   "create --user <email|id> --url <url> [--ttl 7d] [--not-before …] [--max-uses N] [--mode request|login] [--method M]... [--data '{…}']",
		Short: "Mints a signed link for one user and one URL and prints it",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			f := c.Flags()
			var in ops.NewLink
			in.User, _ = f.GetString("user")
			in.URL, _ = f.GetString("url")
			in.TTL, _ = f.GetString("ttl")
			in.NotBefore, _ = f.GetString("not-before")
			in.Mode, _ = f.GetString("mode")
			in.Methods, _ = f.GetStringSlice("method")
			in.BindQuery, _ = f.GetBool("bind-query")
			if f.Changed("max-uses") {
				n, _ := f.GetInt("max-uses")
				in.MaxUses = &n
			}
			data, _ := f.GetString("data")
			var err error
			if in.Data, err = parseData(data); err != nil {
				return err
			}
			if in.User == "" || in.URL == "" {
				return fmt.Errorf("--user and --url are required")
			}
			in.Param = o.LinkParamFor(in.URL)
			out, err := o.MintLink(c.Context(), in, "cli")
			if err != nil {
				return err
			}
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), out)
			}
			fmt.Fprintln(c.OutOrStdout(), out.URL)
			fmt.Fprintf(c.ErrOrStderr(), "link %s for user %d, %s mode, %s, until %s\n", out.JTI, out.UserID, out.Mode, usesText(out.MaxUses), optTimeText(out.ExpiresAt))
			if len(out.Headers) > 0 {
				fmt.Fprintf(c.ErrOrStderr(), "mail headers:\nList-Unsubscribe: %s\nList-Unsubscribe-Post: %s\n", out.Headers["List-Unsubscribe"], out.Headers["List-Unsubscribe-Post"])
			}
			return nil
		}),
	}
	cf := create.Flags()
	cf.String("user", "", "User the link is for (email or id)")
	cf.String("url", "", "Absolute URL the link opens")
	cf.String("ttl", "7d", "How long the link works")
	cf.String("not-before", "", "When the link starts to work: RFC 3339 time or a duration from now")
	cf.Int("max-uses", 1, "How many times the link works; 0 = unlimited until it expires")
	cf.String("mode", "request", "request (this request only, e.g. unsubscribe) or login (starts a session)")
	cf.StringSlice("method", nil, "Allowed HTTP method (repeatable); default GET and HEAD, plus the RFC 8058 one-click POST")
	cf.String("data", "", "JSON object forwarded upstream in X-Latchkey-Link-Data")
	cf.Bool("bind-query", false, "Bind the link to the URL's exact query too")

	list := &cobra.Command{
		Use:   "list [--user <email|id>]",
		Short: "Lists links, newest first",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			user, _ := c.Flags().GetString("user")
			ls, err := o.Links(c.Context(), user)
			if err != nil {
				return err
			}
			if wantJSON(c) {
				js := ops.ToJSON(ls, ops.ToLinkJSON)
				return writeJSON(c.OutOrStdout(), js)
			}
			tw := newTable(c.OutOrStdout())
			fmt.Fprintln(tw, "JTI\tUSER\tMODE\tTARGET\tUSES\tEXPIRES\tREVOKED")
			for _, l := range ls {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d/%s\t%s\t%s\n", cell(l.JTI), l.UserID, dash(l.Mode), dash(l.Target), l.Uses, maxText(l.MaxUses), timeOrDash(l.ExpiresAt), timeOrDash(l.RevokedAt))
			}
			return tw.Flush()
		}),
	}
	list.Flags().String("user", "", "Only this user's links")

	show := &cobra.Command{
		Use:   "show <jti>",
		Short: "Shows a link and every attempt to use it (IP, browser, status)",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			l, err := o.ShowLink(c.Context(), args[0])
			if err != nil {
				return err
			}
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), l)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "link %s: user %d, %s mode, %s, used %d of %s, created %s by %s, expires %s, revoked %s\n\n",
				cell(l.JTI), l.UserID, cell(l.Mode), dash(l.Target), l.Uses, maxText(l.MaxUses), timeOrDash(l.CreatedAt.Time), dash(l.CreatedBy), optTimeText(l.ExpiresAt), optTimeText(l.RevokedAt))
			tw := newTable(w)
			fmt.Fprintln(tw, "TIME\tOUTCOME\tREASON\tSTATUS\tMETHOD\tPATH\tCLIENT IP\tBROWSER\tOS\tDEVICE")
			for _, e := range l.UsesLog {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", timeOrDash(e.Time.Time), cell(e.Outcome), dash(e.Reason), e.Status, cell(e.Method), cell(e.Path),
					dash(e.ClientIP), dash(strings.TrimSpace(e.Browser+" "+e.Version)), dash(e.OS), dash(e.Device))
			}
			return tw.Flush()
		}),
	}

	revoke := &cobra.Command{
		Use:   "revoke <jti> | --user <email|id>",
		Short: "Revokes one link, or every link of a user",
		Args:  cobra.MaximumNArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			user, _ := c.Flags().GetString("user")
			jti := ""
			if len(args) == 1 {
				jti = args[0]
			}
			return printRevoked(c)(o.RevokeLinks(c.Context(), jti, user))
		}),
	}
	revoke.Flags().String("user", "", "Revoke every link of this user")
	links.AddCommand(create, list, show, revoke)
	for _, sub := range moreLinksCommands {
		links.AddCommand(sub())
	}
	return links
}

func maxText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func usesText(n int) string {
	if n == 0 {
		return "unlimited uses"
	}
	if n == 1 {
		return "1 use"
	}
	return strconv.Itoa(n) + " uses"
}

func optTimeText(t ops.Time) string { return timeOrDash(t.Time) }

// printRevoked prints what a revocation ended: its message, or with
// --json the one shape every revocation answers with.
func printRevoked(c *cobra.Command) func(ops.Revoked, error) error {
	return func(r ops.Revoked, err error) error {
		if err != nil {
			return err
		}
		if wantJSON(c) {
			return writeJSON(c.OutOrStdout(), r)
		}
		_, err = fmt.Fprintln(c.OutOrStdout(), r.Message)
		return err
	}
}

func ticketsCommand() *cobra.Command {
	tickets := &cobra.Command{Use: "tickets", Short: "Creates, lists, shows and revokes one-shot tickets"}
	create := &cobra.Command{
		Use:   "create --place <place> --purpose <purpose> [--password …] [--expires 5d] [--user …] [--data '{…}'] [--url …] [--count N]",
		Short: "Creates tickets and prints their credentials (shown once)",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			f := c.Flags()
			var in ops.NewTickets
			in.Place, _ = f.GetString("place")
			in.Purpose, _ = f.GetString("purpose")
			in.Password, _ = f.GetString("password")
			in.Expires, _ = f.GetString("expires")
			in.User, _ = f.GetString("user")
			in.URL, _ = f.GetString("url")
			in.Count, _ = f.GetInt("count")
			data, _ := f.GetString("data")
			var err error
			if in.Data, err = parseData(data); err != nil {
				return err
			}
			ts, err := o.CreateTickets(c.Context(), in)
			if err != nil {
				return err
			}
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), ts)
			}
			w := c.OutOrStdout()
			for _, t := range ts {
				if t.URL != "" {
					fmt.Fprintln(w, t.URL)
				} else {
					fmt.Fprintf(w, "uuid=%s password=%s\n", t.UUID, t.Password)
				}
			}
			fmt.Fprintf(c.ErrOrStderr(), "%d ticket(s) for %s/%s; passwords are shown once\n", len(ts), in.Place, in.Purpose)
			return nil
		}),
	}
	cf := create.Flags()
	cf.String("place", "", "Place the ticket is for, e.g. louvre")
	cf.String("purpose", "", "Purpose, e.g. visit")
	cf.String("password", "", "A password a person chose (hashed with argon2id); default: a generated one per ticket")
	cf.String("expires", "", "Lifetime, e.g. 5d; default: none")
	cf.String("user", "", "User the ticket acts for (email or id): the upstream gets X-User-ID")
	cf.String("data", "", "JSON object sent upstream in X-Ticket-Data")
	cf.String("url", "", "Print full links to this URL with ?uuid=…&password=…")
	cf.Int("count", 1, "How many tickets to make")

	list := &cobra.Command{
		Use:   "list [--place …] [--purpose …] [--state valid|in_use|used|revoked|expired]",
		Short: "Lists tickets, newest first",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			f := c.Flags()
			var tf store.TicketFilter
			tf.Place, _ = f.GetString("place")
			tf.Purpose, _ = f.GetString("purpose")
			tf.State, _ = f.GetString("state")
			ts, err := o.Tickets(c.Context(), tf)
			if err != nil {
				return err
			}
			if wantJSON(c) {
				js := ops.ToJSON(ts, ops.ToTicketJSON)
				return writeJSON(c.OutOrStdout(), js)
			}
			tw := newTable(c.OutOrStdout())
			fmt.Fprintln(tw, "UUID\tPLACE\tPURPOSE\tSTATE\tCREATED\tEXPIRES\tUSED\tSTATUS\tIP")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", cell(t.UUID), cell(t.Place), cell(t.Purpose), cell(t.State), timeOrDash(t.CreatedAt),
					timeOrDash(t.ExpiresAt), timeOrDash(t.UsedAt), t.UseStatus, dash(t.UseIP))
			}
			return tw.Flush()
		}),
	}
	list.Flags().String("place", "", "Only this place")
	list.Flags().String("purpose", "", "Only this purpose")
	list.Flags().String("state", "", "Only this state")

	show := &cobra.Command{
		Use:   "show <uuid>",
		Short: "Shows a ticket and every attempt to use it",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			t, err := o.ShowTicket(c.Context(), args[0])
			if err != nil {
				return err
			}
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), t)
			}
			w := c.OutOrStdout()
			fmt.Fprintf(w, "ticket %s: %s/%s, %s, created %s, expires %s, data %s\n", cell(t.UUID), cell(t.Place), cell(t.Purpose), cell(t.State),
				timeOrDash(t.CreatedAt.Time), optTimeText(t.ExpiresAt), cell(string(t.Data)))
			if !t.UsedAt.IsZero() {
				fmt.Fprintf(w, "used %s from %s (%s), upstream status %d\n", timeOrDash(t.UsedAt.Time), cell(t.UseIP), cell(t.UseUA), t.UseStatus)
			}
			fmt.Fprintln(w)
			tw := newTable(w)
			fmt.Fprintln(tw, "TIME\tOUTCOME\tREASON\tSTATUS\tMETHOD\tPATH\tCLIENT IP\tBROWSER")
			for _, e := range t.Attempts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", timeOrDash(e.Time.Time), cell(e.Outcome), dash(e.Reason), e.Status, cell(e.Method), cell(e.Path),
					dash(e.ClientIP), dash(strings.TrimSpace(e.Browser+" "+e.Version)))
			}
			return tw.Flush()
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke <uuid>",
		Short: "Revokes a ticket",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			return printRevoked(c)(o.RevokeTicket(c.Context(), args[0]))
		}),
	}
	tickets.AddCommand(create, list, show, revoke)
	return tickets
}

func mailCommand() *cobra.Command {
	mailCmd := &cobra.Command{Use: "mail", Short: "Shows the mail outbox"}
	list := &cobra.Command{
		Use:   "list [--state queued|sending|sent|failed] [--limit N]",
		Short: "Lists outbox mails, newest first (never their bodies)",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			state, _ := c.Flags().GetString("state")
			limit, _ := c.Flags().GetInt("limit")
			ms, err := o.Mails(c.Context(), state, limit)
			if err != nil {
				return err
			}
			if wantJSON(c) {
				js := ops.ToJSON(ms, ops.ToMailJSON)
				return writeJSON(c.OutOrStdout(), js)
			}
			tw := newTable(c.OutOrStdout())
			fmt.Fprintln(tw, "ID\tKIND\tTO\tSUBJECT\tSTATE\tATTEMPTS\tCREATED\tNEXT TRY\tSENT\tERROR")
			for _, m := range ms {
				next := "-"
				if m.State == store.MailQueued {
					next = timeOrDash(m.NextAttemptAt)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, cell(m.Kind), cell(m.To), dash(m.Subject), cell(m.State), m.Attempts,
					timeOrDash(m.CreatedAt), next, timeOrDash(m.SentAt), dash(m.LastError))
			}
			return tw.Flush()
		}),
	}
	list.Flags().String("state", "", "Only mails in this state: queued, sending, sent or failed")
	list.Flags().Int("limit", 100, "At most this many mails")
	mailCmd.AddCommand(list)
	return mailCmd
}

// parseData reads --data, a JSON object.
func parseData(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("data: %q is not a JSON object: %v", s, err)
	}
	return m, nil
}

func addAuditQueryFlags(c *cobra.Command) {
	f := c.Flags()
	f.String("since", "", "Only records newer than this: a duration (15m, 1h, 7d) or an RFC 3339 time")
	f.String("user", "", "Only this user's records")
	f.String("kind", "", "Only this credential kind: session, invite, ticket, link")
	f.String("outcome", "", "Only accepted or refused")
	f.String("reason", "", "Only this reason (e.g. missing_role, revoked, bad_password)")
	f.String("ip", "", "Only this client address")
	f.String("session", "", "Only this session's records")
	f.String("site", "", "Only this site's records (its hosts)")
	f.Int64("before", 0, "Only records older than the one with this id (the next page)")
}

func auditQueryFlags(c *cobra.Command) ops.AuditQuery {
	f := c.Flags()
	var q ops.AuditQuery
	q.Since, _ = f.GetString("since")
	q.User, _ = f.GetString("user")
	q.Kind, _ = f.GetString("kind")
	q.Outcome, _ = f.GetString("outcome")
	q.Reason, _ = f.GetString("reason")
	q.IP, _ = f.GetString("ip")
	q.Session, _ = f.GetString("session")
	q.Site, _ = f.GetString("site")
	q.Before, _ = f.GetInt64("before")
	return q
}

// openStore opens the store the config names, as every command does: only
// one that exists (see existingStore). Inside the gateway it is the running
// store, which closing leaves open.
func (env cliEnv) openStore(ctx context.Context, repl *caddy.Replacer, configFile string) (store.Store, error) {
	if env.running {
		return unclosed{env.app.store}, nil
	}
	driver, target, err := env.app.storageTarget(repl)
	if err != nil {
		return nil, err
	}
	if err := existingStore(driver, target, configFile); err != nil {
		return nil, err
	}
	return openStore(ctx, driver, target)
}

// unclosed is the running gateway's store lent to one command.
type unclosed struct{ store.Store }

func (unclosed) Close() error { return nil }

// existingStore refuses to let a command create a store: a command run
// from another directory, or without the config the gateway runs with,
// would otherwise write to a new, empty store the gateway never reads. It
// says, on stderr, which store the command uses.
func existingStore(driver, target, configFile string) error {
	if driver != "sqlite" {
		fmt.Fprintf(os.Stderr, "latchkey: store %s\n", driver)
		return nil
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		abs = target
	}
	if _, err := os.Stat(abs); err != nil {
		from := "the default store path (no config found: pass --config with the gateway's Caddyfile)"
		if configFile != "" {
			from = "the storage of " + configFile
		}
		return fmt.Errorf("no latchkey store at %s (%s): run the gateway once to create it, or run this command from the gateway's directory with its config — a command never creates a store: %w", abs, from, err)
	}
	fmt.Fprintf(os.Stderr, "latchkey: store sqlite %s\n", abs)
	return nil
}
