package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/ops"
)

// janitorCommand is `caddy latchkey janitor run`: the retention the gateway
// applies on its schedule (the latchkey global option's retention block),
// once, now.
func janitorCommand() *cobra.Command {
	janitor := &cobra.Command{Use: "janitor", Short: "Runs the retention janitor"}
	run := &cobra.Command{
		Use:   "run [--json]",
		Short: "Deletes ended sessions (and old audit records) and blanks old IP addresses, once",
		Long: `
Applies the config's retention once, as the gateway does on its schedule:
deletes sessions that ended more than retain_sessions ago (default 7d),
blanks IP addresses older than retain_ip (default 30d) in sessions, users'
logins and audit records, and deletes audit records older than retain_audit
if it is set. It prints what it removed. It works in short batches, each
kept once done: interrupted, it keeps what it did, and the next run goes on.
The gateway need not be stopped.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			c.SilenceUsage = true
			configFile, _ := c.Flags().GetString("config")
			// No deadline: a first run over a long backlog may take
			// minutes. An interrupt stops it between two batches.
			ctx, stop := interruptible(c)
			defer stop()
			env, err := cliEnvOf(c)
			if err != nil {
				return err
			}
			r := env.app.Retention.retention()
			if err := r.Validate(); err != nil {
				return fmt.Errorf("latchkey %w", err)
			}
			st, err := env.openStore(ctx, caddy.NewReplacer(), configFile)
			if err != nil {
				return err
			}
			defer st.Close()
			res, runErr := ops.RunJanitor(ctx, st, r, time.Now())
			if wantJSON(c) {
				if err := writeJSON(c.OutOrStdout(), res); err != nil {
					return err
				}
			} else if err := printJanitorRun(c, r.WithDefaults(), res); err != nil {
				return err
			}
			return runErr
		},
	}
	janitor.AddCommand(run)
	return janitor
}

// printJanitorRun prints what a run removed, and by which setting.
func printJanitorRun(c *cobra.Command, r ops.Retention, res ops.JanitorRun) error {
	tw := newTable(c.OutOrStdout())
	fmt.Fprintf(tw, "sessions deleted\t%d\tended before %s (retain_sessions %s)\n",
		res.SessionsDeleted, timeOrDash(res.SessionsEndedBefore.Time), ops.FormatDuration(r.Sessions))
	fmt.Fprintf(tw, "session IPs blanked\t%d\trecorded before %s (retain_ip %s)\n",
		res.SessionIPsBlanked, timeOrDash(res.IPsBefore.Time), ops.FormatDuration(r.IPs))
	fmt.Fprintf(tw, "login IPs blanked\t%d\t\n", res.LoginIPsBlanked)
	fmt.Fprintf(tw, "audit IPs blanked\t%d\t\n", res.AuditIPsBlanked)
	if res.AuditBefore.IsZero() {
		fmt.Fprintf(tw, "audit records deleted\t%d\tnone: kept for ever (no retain_audit)\n", res.AuditDeleted)
	} else {
		fmt.Fprintf(tw, "audit records deleted\t%d\tbefore %s (retain_audit %s)\n",
			res.AuditDeleted, timeOrDash(res.AuditBefore.Time), ops.FormatDuration(r.Audit))
	}
	fmt.Fprintf(tw, "took\t%s\t\n", time.Duration(res.Took).Round(time.Millisecond))
	return tw.Flush()
}
