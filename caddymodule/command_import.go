package caddymodule

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/ops"
)

// importCommand is `caddy latchkey users import <file>`: users from a
// legacy application, with their password hashes as it stored them.
func importCommand() *cobra.Command {
	imp := &cobra.Command{
		// The file is read where the command runs, and sent to the gateway.
		Annotations: map[string]string{annInputArg: "0"},
		Use:         "import <file> [--format jsonl|csv] [--site <host>] [--dry-run]",
		Short:       "Imports users, with their password hashes, from a legacy application",
		Long: `
Creates the users of a file, with their password hashes as the application
that made them stored them: Django's pbkdf2_sha256$…, argon2$…,
bcrypt_sha256$… and bcrypt$…, passlib's $pbkdf2-sha512$… (Invenio), or our
own $argon2id$…. A user's next successful login replaces a legacy hash with
an argon2id one. A Django "!…" (unusable) or empty hash imports the user
without a password.

The file is JSON Lines (.jsonl, .json: one object a line) or CSV (.csv: a
header naming the columns, then a user a row), told by --format or by its
extension; "-" reads standard input, with --format. The fields are email
(required), name, phone, site, roles and password_hash; no others are
accepted. roles is a JSON array of strings in JSON Lines and ';'-separated
in CSV; a role is "staff" (on the user's site) or "staff@<site>". A row with
no site gets --site; with neither, the user is known on every site.

Every row is checked first: if any is bad, nothing is imported, and every
bad line is listed with its reason. A user that exists on its site is
skipped, never overwritten, so an import that stopped can be run again.
Roles missing on their site are created. Lines are limited to 64 KiB and a
file to 1,000,000 users.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			c.SilenceUsage = true
			f := c.Flags()
			asked, _ := f.GetString("format")
			site, _ := f.GetString("site")
			dry, _ := f.GetBool("dry-run")
			format, err := ops.ImportFormat(args[0], asked)
			if err != nil {
				return err
			}
			var in io.Reader = c.InOrStdin()
			if args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer file.Close()
				in = file
			}
			configFile, _ := f.GetString("config")
			// No deadline, unlike withOps: a million users take a while.
			// An interrupt stops it between two users; those created stay,
			// and running it again skips them.
			ctx, stop := interruptible(c)
			defer stop()
			env, err := cliEnvOf(c)
			if err != nil {
				return err
			}
			st, err := env.openStore(ctx, caddy.NewReplacer(), configFile)
			if err != nil {
				return err
			}
			defer st.Close()
			o := &ops.Ops{Store: st, Now: time.Now, Sites: env.sites}
			res, err := o.ImportUsers(ctx, in, format, site, dry)
			if err != nil {
				if res.Imported > 0 {
					printImport(c, res)
				}
				return err
			}
			if wantJSON(c) {
				return writeJSON(c.OutOrStdout(), res)
			}
			return printImport(c, res)
		},
	}
	imp.Flags().String("format", "", "jsonl or csv (default: from the file's extension)")
	imp.Flags().String("site", "", "Site of the rows that name none (empty: every site)")
	imp.Flags().Bool("dry-run", false, "Check the file and say what would be imported, writing nothing")
	return imp
}

// printImport prints an import's counts.
func printImport(c *cobra.Command, res ops.ImportResult) error {
	out := c.OutOrStdout()
	verb := "imported"
	if res.DryRun {
		fmt.Fprintln(out, "Dry run: nothing was written.")
		verb = "would import"
	}
	tw := newTable(out)
	fmt.Fprintf(tw, "users in the file\t%d\n", res.Rows)
	fmt.Fprintf(tw, "%s\t%d\n", verb, res.Imported)
	fmt.Fprintf(tw, "skipped, existing\t%d\t(already on their site; left as they are, not overwritten)\n", res.SkippedExisting)
	for _, s := range slices.Sorted(maps.Keys(res.Schemes)) {
		fmt.Fprintf(tw, "  password %s\t%d\n", s, res.Schemes[s])
	}
	fmt.Fprintf(tw, "  without password\t%d\n", res.WithoutPassword)
	return tw.Flush()
}
