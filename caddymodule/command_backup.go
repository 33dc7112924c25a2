package caddymodule

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/store"
)

func init() { moreCommands = append(moreCommands, backupCommand) }

// localCommand marks a command that works on files beside the store, at
// paths resolved here: it runs in this process, never in the gateway.
var localCommand = map[string]string{annLocal: "files"}

// backupCommand is `caddy latchkey backup <file>`.
func backupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "backup <file> [--json]",
		Short: "Writes a consistent copy of the SQLite store to a new file, while the gateways run",
		Long: `
Copies the config's SQLite store into a new file (a path relative to the
current directory), as it was at one moment: what the gateways commit while
the copy is made is left for the next backup. The gateways need not stop.
An existing file is never replaced. When the config's gateway runs, the
command runs inside it (through its admin API, as other commands do), so the
file is written by Caddy's user, which must be able to write there. The
copy is a latchkey store: restore it by stopping Caddy, putting it in the
store's place (and deleting the old store's -wal and -shm files), and
starting Caddy.

The secret is not in the backup, on purpose: a backup that leaks then opens
no session, invite code, ticket or link. Keep the secret file (whose path is
printed) apart from the backups; a restored store needs it.

A PostgreSQL store is backed up with pg_dump.`,
		Args: cobra.ExactArgs(1),
		// Sent to a running gateway, which reads the store however it is
		// owned; the file's path is made absolute here first.
		Annotations: map[string]string{annOutputArg: "0"},
		RunE:        runBackup,
	}
}

func runBackup(c *cobra.Command, args []string) error {
	c.SilenceUsage = true
	configFile, _ := c.Flags().GetString("config")
	// No deadline: a big store takes a while; an interrupt stops it and
	// leaves no file.
	ctx, stop := interruptible(c)
	defer stop()
	env, err := cliEnvOf(c)
	if err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	driver, target, err := env.app.storageTarget(repl)
	if err != nil {
		return err
	}
	if driver == "postgres" {
		return errors.New(pgDumpHelp(target))
	}
	dest, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	// Before opening the store, so that a refusal changes nothing at all.
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%s exists: a backup never replaces a file; give a new name", dest)
	}
	st, err := env.openStore(ctx, repl, configFile)
	if err != nil {
		return err
	}
	defer st.Close()
	if u, ok := st.(unclosed); ok {
		st = u.Store
	}
	b, ok := st.(store.Backuper)
	if !ok {
		return fmt.Errorf("latchkey backup: storage %s cannot be backed up by latchkey", driver)
	}
	info, err := b.Backup(ctx, dest)
	if err != nil {
		return err
	}
	where, paths := secretWhereabouts(env.app, repl, target)
	note := "The secret is NOT in the backup: it is kept apart on purpose, so that a backup alone opens nothing. " + where +
		" Keep a copy of it safe and apart from the backups: a restored store needs it."
	if wantJSON(c) {
		return writeJSON(c.OutOrStdout(), map[string]any{
			"path": info.Path, "size": info.Size, "schema_version": info.SchemaVersion,
			"store": target, "secret_files": paths, "note": note,
		})
	}
	fmt.Fprintf(c.OutOrStdout(), "Wrote %s (%d bytes, schema version %d), a copy of %s.\n%s\n", info.Path, info.Size, info.SchemaVersion, target, note)
	return nil
}

// secretWhereabouts says where the gateways' secret comes from, and names
// the files that hold it (and its previous secrets), never the secret.
func secretWhereabouts(a *App, repl *caddy.Replacer, sqlitePath string) (string, []string) {
	switch {
	case a.SecretFile != "":
		p := repl.ReplaceKnown(a.SecretFile, "")
		return fmt.Sprintf("It is in %s (the config's secret_file).", p), []string{p}
	case a.Secret != "":
		return "It is set in the config (`secret`), with previous_secrets if any.", nil
	}
	p := keys.SecretPath(sqlitePath)
	prev := keys.PreviousSecretsPath(p)
	if _, err := os.Stat(prev); err == nil {
		return fmt.Sprintf("It is in %s, and the previous secrets still accepted in %s.", p, prev), []string{p, prev}
	}
	return fmt.Sprintf("It is in %s.", p), []string{p}
}

// pgDumpHelp is the refusal for a PostgreSQL store, with a pg_dump command
// for it: the DSN's user, host and database when it is a URL, never its
// password or parameters.
func pgDumpHelp(dsn string) string {
	sample := "postgres://USER@HOST:5432/DBNAME"
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") && u.Host != "" {
		clean := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
		if u.User != nil {
			clean.User = url.User(u.User.Username())
		}
		sample = clean.String()
	}
	return "latchkey backup copies SQLite stores; this config's store is PostgreSQL, which pg_dump backs up consistently while the gateways run:\n" +
		"  pg_dump --format=custom --file=latchkey-$(date +%F).dump '" + sample + "'\n" +
		"(the password from ~/.pgpass or PGPASSWORD, not on the command line; restore with pg_restore). " +
		"The secret is not in the database: keep the config's secret or secret_file apart from the dumps."
}
