package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/latchkeyhq/latchkey/internal/store/postgres"
)

// validate checks the storage settings that need no I/O. hasSecret: the app
// configures secret or secret_file.
func (sc *StorageConfig) validate(hasSecret bool) error {
	switch sc.Driver {
	case "", "sqlite":
		if sc.DSN != "" || sc.DSNFile != "" {
			return errors.New("latchkey storage: dsn and dsn_file are for storage postgres; sqlite takes a path")
		}
	case "postgres":
		switch {
		case sc.Path != "":
			return errors.New("latchkey storage: path is for storage sqlite; postgres takes dsn or dsn_file")
		case sc.DSN != "" && sc.DSNFile != "":
			return errors.New("latchkey storage: postgres takes dsn or dsn_file, not both")
		case sc.DSN == "" && sc.DSNFile == "":
			return errors.New("latchkey storage: postgres needs dsn or dsn_file")
		case !hasSecret:
			return errors.New(postgresSecretHelp)
		}
	default:
		return fmt.Errorf("latchkey storage: unknown driver %q (want sqlite or postgres)", sc.Driver)
	}
	return nil
}

// postgresSecretHelp explains why storage postgres needs a configured
// secret: a generated one is kept in a file beside a SQLite database, and
// a PostgreSQL database has no "beside" that every gateway sharing it sees.
const postgresSecretHelp = "latchkey storage postgres needs `secret` (e.g. secret {env.LATCHKEY_SECRET}) or `secret_file`, " +
	"the same on every gateway sharing the database: a generated secret is kept in a file beside a SQLite database, " +
	"which a PostgreSQL database does not have"

// postgresDSN is the configured DSN with placeholders expanded, or read from
// dsn_file. Errors never show the DSN.
func (sc *StorageConfig) postgresDSN(repl *caddy.Replacer) (string, error) {
	switch {
	case sc.DSN != "" && sc.DSNFile != "":
		return "", errors.New("latchkey storage: postgres takes dsn or dsn_file, not both")
	case sc.DSN != "":
		dsn := strings.TrimSpace(repl.ReplaceKnown(sc.DSN, ""))
		if dsn == "" {
			return "", errors.New("latchkey storage: the postgres dsn expands to nothing (is its environment variable set?)")
		}
		return dsn, nil
	case sc.DSNFile != "":
		path := repl.ReplaceKnown(sc.DSNFile, "")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("latchkey storage: postgres dsn_file: %w", err)
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", fmt.Errorf("latchkey storage: postgres dsn_file %q is empty", path)
		}
		return dsn, nil
	}
	return "", errors.New("latchkey storage: postgres needs dsn or dsn_file")
}

// storePoolKey names an open store in the pool shared across reloads. A
// PostgreSQL DSN holds a password, so its key is a hash of it, never the
// DSN itself.
func storePoolKey(driver, target string) string {
	if driver == "postgres" {
		sum := sha256.Sum256([]byte(target))
		return driver + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return driver + ":" + target
}

// describeTarget is what logs show of a store: the SQLite path, or the
// PostgreSQL user, host, port and database without the password.
func describeTarget(driver, target string) string {
	if driver == "postgres" {
		return postgres.Describe(target)
	}
	return target
}

// parsePostgresStorage reads what follows "storage postgres": one DSN on
// the line, or a block with dsn or dsn_file. No error quotes a DSN, even a
// malformed one: it may hold a password.
//
//	storage postgres <dsn>
//	storage postgres {
//		dsn <dsn>
//		dsn_file <path>
//	}
func parsePostgresStorage(d *caddyfile.Dispenser, args []string) (*StorageConfig, error) {
	sc := &StorageConfig{Driver: "postgres"}
	switch len(args) {
	case 0:
	case 1:
		sc.DSN = args[0]
	default:
		return nil, d.Errf("storage postgres takes one DSN, got %d words; quote a key=value DSN: storage postgres \"host=… user=… password=… dbname=…\"", len(args))
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		var dst *string
		switch name {
		case "dsn":
			dst = &sc.DSN
		case "dsn_file":
			dst = &sc.DSNFile
		default:
			return nil, d.Errf("unknown storage postgres subdirective %q (want dsn or dsn_file)", name)
		}
		if len(args) == 1 {
			return nil, d.Err("storage postgres: give the DSN on the storage line or in its block, not both")
		}
		vals := d.RemainingArgs()
		if len(vals) != 1 {
			return nil, d.Errf("storage postgres %s takes one value, got %d; quote a key=value DSN", name, len(vals))
		}
		if *dst != "" {
			return nil, d.Errf("storage postgres %s given twice", name)
		}
		*dst = vals[0]
	}
	switch {
	case sc.DSN != "" && sc.DSNFile != "":
		return nil, d.Err("storage postgres takes dsn or dsn_file, not both")
	case sc.DSN == "" && sc.DSNFile == "":
		return nil, d.Err("storage postgres needs a DSN: storage postgres <dsn>, or a block with dsn <dsn> or dsn_file <path>")
	}
	return sc, nil
}
