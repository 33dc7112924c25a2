package caddymodule

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/ops"
)

func init() { moreCommands = append(moreCommands, secretCommand) }

// secretCommand is `caddy latchkey secret show|rotate|retire`.
func secretCommand() *cobra.Command {
	sec := &cobra.Command{
		Use:   "secret",
		Short: "Shows, rotates and retires the gateway secret",
		Long: `
The gateway secret keys every session cookie, invite code, generated ticket
password and signed link. By default it is generated on first start and kept
in a 0600 file beside the SQLite store (latchkey.secret beside latchkey.db).

Rotating it starts a new secret for everything made from then on; what was
made under the old one keeps working until it expires or the old secret is
retired. Running gateways take up a rotation or a retirement when Caddy
reloads its config (caddy reload --force: the config text has not changed).

A secret set in the config (secret or secret_file) is rotated in the config:
put the new one there, move the old one to previous_secrets, reload; remove
it from previous_secrets later, and reload again.`,
	}
	show := &cobra.Command{
		Use:         "show [--json]",
		Aliases:     []string{"list"},
		Short:       "Shows the current and previous secrets by fingerprint, never the secrets",
		Args:        cobra.NoArgs,
		Annotations: localCommand,
		RunE:        runSecretShow,
	}
	rotate := &cobra.Command{
		Use:   "rotate [--json]",
		Short: "Starts a new generated secret; what the old one made keeps working until retired",
		Long: `
Generates a new secret into the secret file and keeps the old one in the
previous-secrets file beside it (latchkey.previous-secrets), so that
sessions, invite codes, tickets and links made under it are still accepted.
Reload Caddy (caddy reload --force) for running gateways to use the new secret.
Retire the old one (caddy latchkey secret retire) once the longest-lived of
them has expired: sessions (30d by default), invite codes, links. At most
` + fmt.Sprint(keys.MaxPreviousSecrets) + ` previous secrets are kept.`,
		Args:        cobra.NoArgs,
		Annotations: localCommand,
		RunE:        runSecretRotate,
	}
	retire := &cobra.Command{
		Use:   "retire [--json]",
		Short: "Drops every previous secret: nothing made under them is accepted after a reload",
		Long: `
Deletes the previous-secrets file. Once Caddy reloads (caddy reload --force), every
session, invite code, ticket and link made under a previous secret is
refused as an unknown one.`,
		Args:        cobra.NoArgs,
		Annotations: localCommand,
		RunE:        runSecretRetire,
	}
	sec.AddCommand(show, rotate, retire)
	return sec
}

// secretFiles is where a config's generated secret is kept; configured is
// set instead when the config sets the secret.
type secretFiles struct {
	app        *App
	configured string // how the config sets it; "" for a generated secret
	current    string // the secret file
	previous   string // the previous-secrets file
}

func loadSecretFiles(c *cobra.Command) (secretFiles, error) {
	c.SilenceUsage = true
	configFile, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	env, err := loadCLIEnv(configFile, adapter)
	if err != nil {
		return secretFiles{}, err
	}
	sf := secretFiles{app: env.app}
	repl := caddy.NewReplacer()
	switch {
	case env.app.SecretFile != "":
		sf.configured = "secret_file " + repl.ReplaceKnown(env.app.SecretFile, "")
		sf.current = repl.ReplaceKnown(env.app.SecretFile, "")
		return sf, nil
	case env.app.Secret != "":
		sf.configured = "secret"
		return sf, nil
	}
	driver, target, err := env.app.storageTarget(repl)
	if err != nil {
		return secretFiles{}, err
	}
	if sf.current, err = generatedSecretPath(driver, target); err != nil {
		return secretFiles{}, err
	}
	sf.previous = keys.PreviousSecretsPath(sf.current)
	// The files belong to a store: a config that names none the gateway
	// made is the wrong config, not a store without a secret.
	if err := existingStore(driver, target, configFile); err != nil {
		return secretFiles{}, err
	}
	return sf, nil
}

// configuredHelp is the refusal of rotate and retire for a secret the
// config sets.
func (sf secretFiles) configuredHelp(verb string) error {
	return fmt.Errorf("the secret is set in the config (%s), so latchkey cannot %s it. "+
		"To rotate it: put the new secret in its place and list the old one in previous_secrets in the latchkey global option, "+
		"newest first (e.g. previous_secrets {env.LATCHKEY_OLD_SECRET}), then reload Caddy (caddy reload). "+
		"To retire the old one: once what was made under it has expired, remove it from previous_secrets and reload again",
		sf.configured, verb)
}

// secretJSON is one secret as show prints it: never the secret.
type secretJSON struct {
	Use         string   `json:"use"` // "current" or "previous"
	Fingerprint string   `json:"fingerprint"`
	Where       string   `json:"where"`    // a file, or where in the config
	Modified    ops.Time `json:"modified"` // the file's modification time, or null
}

func runSecretShow(c *cobra.Command, _ []string) error {
	sf, err := loadSecretFiles(c)
	if err != nil {
		return err
	}
	var rows []secretJSON
	modified := func(path string) ops.Time { return ops.At(keys.FileTime(path)) }
	if sf.configured != "" {
		cur, err := sf.app.loadSecret(context.Background(), caddy.NewReplacer(), nil)
		if err != nil {
			return err
		}
		rows = append(rows, secretJSON{Use: "current", Fingerprint: keys.Fingerprint(cur), Where: sf.configured})
		if sf.current != "" {
			rows[0].Modified = modified(sf.current)
		}
		for i, p := range sf.app.previous {
			rows = append(rows, secretJSON{Use: "previous", Fingerprint: keys.Fingerprint(p), Where: fmt.Sprintf("previous_secrets #%d", i+1)})
		}
	} else {
		cur, err := keys.ReadSecretFile(sf.current)
		if os.IsNotExist(err) {
			return fmt.Errorf("no secret in %s yet: the gateway generates it when it first starts on this store", sf.current)
		}
		if err != nil {
			return err
		}
		rows = append(rows, secretJSON{Use: "current", Fingerprint: keys.Fingerprint(cur), Where: sf.current, Modified: modified(sf.current)})
		prev, err := keys.ReadPreviousSecrets(sf.previous)
		if err != nil {
			return err
		}
		for _, p := range keys.Distinct(cur, prev) {
			rows = append(rows, secretJSON{Use: "previous", Fingerprint: keys.Fingerprint(p), Where: sf.previous, Modified: modified(sf.previous)})
		}
	}
	if wantJSON(c) {
		return writeJSON(c.OutOrStdout(), rows)
	}
	tw := newTable(c.OutOrStdout())
	fmt.Fprintln(tw, "USE\tFINGERPRINT\tMODIFIED\tWHERE")
	for _, r := range rows {
		mod := "-"
		if !r.Modified.IsZero() {
			mod = timeOrDash(r.Modified.Time)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Use, r.Fingerprint, mod, cell(r.Where))
	}
	return tw.Flush()
}

func runSecretRotate(c *cobra.Command, _ []string) error {
	sf, err := loadSecretFiles(c)
	if err != nil {
		return err
	}
	if sf.configured != "" {
		return sf.configuredHelp("rotate")
	}
	// Loaded as the gateway loads it first, so that a secret an older
	// latchkey kept in the store is moved to its file before it is
	// rotated out.
	env := cliEnv{app: sf.app}
	repl := caddy.NewReplacer()
	configFile, _ := c.Flags().GetString("config")
	st, err := env.openStore(context.Background(), repl, configFile)
	if err != nil {
		return err
	}
	_, err = sf.app.loadSecret(context.Background(), repl, st)
	st.Close()
	if err != nil {
		return err
	}
	r, err := keys.RotateGeneratedSecret(sf.current)
	if err != nil {
		return err
	}
	prev := make([]string, len(r.Previous))
	for i, p := range r.Previous {
		prev[i] = keys.Fingerprint(p)
	}
	if wantJSON(c) {
		return writeJSON(c.OutOrStdout(), map[string]any{
			"current": keys.Fingerprint(r.Current), "previous": prev,
			"secret_file": sf.current, "previous_secrets_file": sf.previous,
		})
	}
	w := c.OutOrStdout()
	fmt.Fprintf(w, "New secret %s in %s.\nPrevious secrets, still accepted: %s (in %s).\n", keys.Fingerprint(r.Current), sf.current, strings.Join(prev, ", "), sf.previous)
	reloadHint(w, "use it: until then they make everything under the old secret (still accepted), and refuse what this CLI makes under the new one")
	fmt.Fprintf(w, "Retire the previous secrets (caddy latchkey secret retire) once everything made under them has expired: the longest session, invite code and link lifetime.\n")
	return nil
}

func runSecretRetire(c *cobra.Command, _ []string) error {
	sf, err := loadSecretFiles(c)
	if err != nil {
		return err
	}
	if sf.configured != "" {
		return sf.configuredHelp("retire")
	}
	since := keys.FileTime(sf.previous)
	n, err := keys.RetirePreviousSecrets(sf.current)
	if err != nil {
		return err
	}
	if wantJSON(c) {
		return writeJSON(c.OutOrStdout(), map[string]any{"retired": n, "previous_secrets_file": sf.previous})
	}
	w := c.OutOrStdout()
	switch {
	case since.IsZero():
		fmt.Fprintf(w, "No previous secrets to retire (no %s).\n", sf.previous)
		return nil
	case n < 0:
		fmt.Fprintf(w, "Retired the previous secrets: deleted %s, which could not be read.\n", sf.previous)
	default:
		fmt.Fprintf(w, "Retired %d previous secret(s), last rotated out %s: deleted %s.\n", n, timeOrDash(since), sf.previous)
	}
	reloadHint(w, "refuse what was made under them")
	return nil
}

func reloadHint(w io.Writer, what string) {
	fmt.Fprintf(w, "Reload Caddy (caddy reload --force) for running gateways to %s.\n", what)
}
