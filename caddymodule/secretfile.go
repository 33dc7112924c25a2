package caddymodule

import (
	"context"
	"errors"
	"fmt"

	"github.com/latchkeyhq/latchkey/internal/keys"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// generatedSecretPath is where the secret generated for a store is kept:
// for SQLite, beside the database file (keys.SecretPath), so the server and
// the CLI find it from the same storage setting. PostgreSQL has no such
// place, so there the secret must be configured.
func generatedSecretPath(driver, target string) (string, error) {
	switch driver {
	case "sqlite":
		return keys.SecretPath(target), nil
	case "postgres":
		// target is the DSN: never in an error.
		return "", errors.New(postgresSecretHelp)
	}
	return "", fmt.Errorf("latchkey: storage %s cannot keep a generated secret; configure secret or secret_file", driver)
}

// metaSecret is the secret an older latchkey kept in the store's meta table.
type metaSecret struct{ st store.Store }

func (m metaSecret) Read(ctx context.Context) ([]byte, error) {
	b, err := m.st.Secret(ctx, nil)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

func (m metaSecret) Delete(ctx context.Context) error { return m.st.DeleteSecret(ctx) }
