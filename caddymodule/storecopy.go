package caddymodule

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/keys"
	storecopy "github.com/latchkeyhq/latchkey/internal/store/copy"
)

// storeCommand is `caddy latchkey store …`.
func storeCommand() *cobra.Command {
	st := &cobra.Command{Use: "store", Short: "Works on a whole store: copies it to another (SQLite ⇄ PostgreSQL)"}
	cp := &cobra.Command{
		// It names both stores itself; a gateway has nothing to add.
		Annotations: map[string]string{annLocal: "yes"},
		Use:         "copy --from <config|dsn|sqlite:path> --to <config|dsn|sqlite:path> [--force]",
		Short:       "Copies a whole store into another, e.g. SQLite to PostgreSQL and back",
		Long: `
Copies every row of one store into another, keeping ids: users and their
roles, invites, sessions, links, tickets, the audit trail, the mail outbox,
throttle windows. Each side is one of
  - a Caddy config (Caddyfile or JSON): the store its latchkey global option
    names, found as the server finds it (--adapter applies to both sides);
  - a PostgreSQL DSN: postgres://… or postgresql://…;
  - a SQLite database file: sqlite:/path/to/latchkey.db.
The target's tables are created if needed. A target that holds anything is
refused unless --force, which replaces what it holds. The source is read in
one snapshot and the target written in one transaction, committed only when
every table's row count matches the source's. Stop the gateways on the
target while copying; those on the source may run, but what they write after
the snapshot is not copied.

The secret is not copied: the target's gateways must use the source's
(a SQLite store's generated secret is in a file beside it, whose path is
printed; PostgreSQL gateways configure secret or secret_file).`,
		Args: cobra.NoArgs,
		RunE: runStoreCopy,
	}
	cp.Flags().String("from", "", "The store to copy: a config, a postgres:// DSN or sqlite:<path>")
	cp.Flags().String("to", "", "The store to copy into: a config, a postgres:// DSN or sqlite:<path>")
	cp.Flags().Bool("force", false, "Replace what the target holds")
	st.AddCommand(cp)
	return st
}

// copySide is one side of a copy as the command line gave it.
type copySide struct {
	side   storecopy.Side
	config string // the config it was read from; "" for a DSN or sqlite: path
	app    *App   // that config's latchkey app
}

func (s copySide) String() string {
	if s.config != "" {
		return s.side.String() + " (from " + s.config + ")"
	}
	return s.side.String()
}

// resolveCopySide reads one --from or --to. A DSN is never shown, even in
// an error.
func resolveCopySide(flag, arg, adapter string) (copySide, error) {
	switch {
	case arg == "":
		return copySide{}, fmt.Errorf("--%s is required: a config, a postgres:// DSN or sqlite:<path>", flag)
	case strings.HasPrefix(arg, "postgres://"), strings.HasPrefix(arg, "postgresql://"):
		return copySide{side: storecopy.Side{Driver: storecopy.Postgres, Target: arg}}, nil
	case strings.HasPrefix(arg, "sqlite:"):
		path := strings.TrimPrefix(arg, "sqlite:")
		if strings.HasPrefix(path, "//") { // sqlite:///abs/path
			path = strings.TrimPrefix(path, "//")
		}
		if path == "" {
			return copySide{}, fmt.Errorf("--%s sqlite: needs a path, e.g. sqlite:/var/lib/caddy/latchkey/latchkey.db", flag)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return copySide{}, fmt.Errorf("--%s: %w", flag, err)
		}
		return copySide{side: storecopy.Side{Driver: storecopy.SQLite, Target: abs}}, nil
	}
	if _, err := os.Stat(arg); err != nil {
		if strings.Contains(arg, "=") {
			// A libpq key=value DSN: never echoed, it may hold a password.
			return copySide{side: storecopy.Side{Driver: storecopy.Postgres, Target: arg}}, nil
		}
		if strings.Contains(arg, "@") {
			// Perhaps a mistyped DSN, password and all: not echoed.
			return copySide{}, fmt.Errorf("--%s: not a config file, a postgres:// DSN or sqlite:<path> (not shown, as it may hold a password)", flag)
		}
		return copySide{}, fmt.Errorf("--%s %s: not a config file (%v), a postgres:// DSN or sqlite:<path>", flag, arg, err)
	}
	env, err := loadCLIEnv(arg, adapter)
	if err != nil {
		return copySide{}, err
	}
	driver, target, err := env.app.storageTarget(caddy.NewReplacer())
	if err != nil {
		return copySide{}, fmt.Errorf("--%s %s: %w", flag, arg, err)
	}
	return copySide{side: storecopy.Side{Driver: driver, Target: target}, config: arg, app: env.app}, nil
}

func runStoreCopy(c *cobra.Command, _ []string) error {
	c.SilenceUsage = true
	f := c.Flags()
	fromArg, _ := f.GetString("from")
	toArg, _ := f.GetString("to")
	force, _ := f.GetBool("force")
	adapter, _ := f.GetString("adapter")
	from, err := resolveCopySide("from", fromArg, adapter)
	if err != nil {
		return err
	}
	to, err := resolveCopySide("to", toArg, adapter)
	if err != nil {
		return err
	}
	res, err := storecopy.Copy(context.Background(), from.side, to.side, storecopy.Options{Force: force})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	notes := secretNotes(from, to, res)
	out := c.OutOrStdout()
	if wantJSON(c) {
		return writeJSON(out, map[string]any{
			"from": from.String(), "to": to.String(), "result": res, "notes": notes,
		})
	}
	printCopy(out, from, to, res, notes)
	return nil
}

func printCopy(w io.Writer, from, to copySide, res *storecopy.Result, notes []string) {
	fmt.Fprintf(w, "Copied %s\n  into %s\n", from, to)
	if res.SourceMigratedFrom > 0 {
		fmt.Fprintf(w, "The source was migrated from schema version %d to %d first.\n", res.SourceMigratedFrom, res.SchemaVersion)
	}
	if len(res.Replaced) > 0 {
		var parts []string
		for _, t := range res.Replaced {
			parts = append(parts, fmt.Sprintf("%s %d", t.Table, t.Target))
		}
		fmt.Fprintf(w, "Replaced what the target held (--force): %s.\n", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "TABLE\tSOURCE\tTARGET")
	for _, t := range res.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Table, t.Source, t.Target)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d rows in %d tables at schema version %d; every table's count matches.\n", res.Rows(), len(res.Tables), res.SchemaVersion)
	if res.TextRepaired > 0 {
		fmt.Fprintf(w, "%d text values held bytes PostgreSQL cannot store (invalid UTF-8 or NUL) and were stored with U+FFFD in their place.\n", res.TextRepaired)
	}
	for _, n := range notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
}

// secretNotes say where the source's secret is, which the copy did not
// move, and whether the target's gateways have it. They print paths,
// never a secret or a DSN.
func secretNotes(from, to copySide, res *storecopy.Result) []string {
	var notes []string
	src := "The secret was not copied: the gateways on the target must use the source's, or every session, invite code, generated ticket password and signed link made before the copy stops working. "
	srcPath := ""
	switch {
	case from.app != nil && from.app.SecretFile != "":
		p := caddy.NewReplacer().ReplaceKnown(from.app.SecretFile, "")
		src += fmt.Sprintf("The source's config reads it from %s: give the target's gateways `secret_file` with the same content.", p)
	case from.app != nil && from.app.Secret != "":
		src += "The source's config sets it with `secret`: give the target's gateways the same `secret`."
	case from.side.Driver == storecopy.SQLite:
		srcPath = keys.SecretPath(from.side.Target)
		switch _, err := os.Stat(srcPath); {
		case err == nil:
			src += fmt.Sprintf("It was generated for the source and is kept in %s: configure `secret_file` with that file (copied with mode 0600 where the gateways can read it) on every gateway of the target.", srcPath)
			if prev := keys.PreviousSecretsPath(srcPath); !keys.FileTime(prev).IsZero() {
				src += fmt.Sprintf(" The source also still accepts previous secrets, kept in %s (caddy latchkey secret show lists them): give them to the target's gateways as `previous_secrets`, or what was made under them stops working there.", prev)
			}
		case res.LegacySecret:
			src += fmt.Sprintf("The source still keeps it in its database (an older latchkey did; it is not copied): start a gateway of this version on the source once, which moves it to %s, and configure `secret_file` with that file on the target's gateways.", srcPath)
		default:
			src += fmt.Sprintf("The source has none yet (no gateway has started on it; it would be kept in %s), so nothing in it was made with one.", srcPath)
		}
	default:
		src += "The source's gateways configure it (`secret` or `secret_file`): configure the same on the target's."
	}
	notes = append(notes, src)

	switch {
	case to.app != nil && (to.app.Secret != "" || to.app.SecretFile != ""):
		// The target's config names its secret: compared below.
	case to.side.Driver == storecopy.Postgres:
		notes = append(notes, "storage postgres needs `secret` or `secret_file` on every gateway sharing the database (a PostgreSQL database has no file beside it to keep a generated one in).")
	case to.side.Driver == storecopy.SQLite:
		p := keys.SecretPath(to.side.Target)
		if _, err := os.Stat(p); err == nil {
			notes = append(notes, fmt.Sprintf("A gateway on the target without `secret` or `secret_file` uses the secret in %s, which exists: it must hold the source's secret.", p))
		} else {
			hint := "or copy the source's secret there (mode 0600)"
			if srcPath != "" {
				hint = fmt.Sprintf("or copy %s there (mode 0600)", srcPath)
			}
			notes = append(notes, fmt.Sprintf("A gateway on the target without `secret` or `secret_file` would generate a new secret in %s: configure the source's, %s, before starting it.", p, hint))
		}
	}

	sv, sok := peekSecret(from)
	tv, tok := peekSecret(to)
	if sok && tok {
		if subtle.ConstantTimeCompare(sv, tv) == 1 {
			notes = append(notes, "The target's secret, as its config or file gives it, is the source's.")
		} else {
			notes = append(notes, "WARNING: the target's secret, as its config or file gives it, differs from the source's.")
		}
	}
	return notes
}

// peekSecret is the secret a side's gateways would use, if it can be told
// without generating one.
func peekSecret(s copySide) ([]byte, bool) {
	repl := caddy.NewReplacer()
	if s.app != nil {
		switch {
		case s.app.Secret != "":
			v := repl.ReplaceKnown(s.app.Secret, "")
			return []byte(v), v != ""
		case s.app.SecretFile != "":
			b, err := os.ReadFile(repl.ReplaceKnown(s.app.SecretFile, ""))
			v := strings.TrimSpace(string(b))
			return []byte(v), err == nil && v != ""
		}
	}
	if s.side.Driver == storecopy.SQLite {
		b, err := keys.ReadSecretFile(keys.SecretPath(s.side.Target))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, false
		}
		return b, err == nil
	}
	return nil, false
}
