package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MinSecretLen is the shortest secret latchkey accepts, in bytes.
const MinSecretLen = 32

// SecretFileName is the name of the file that keeps a generated secret,
// beside the SQLite database of the default name (latchkey.db).
const SecretFileName = "latchkey.secret"

// SecretPath returns where the secret generated for the SQLite database at
// dbPath is kept: in the database's directory, under the database's name
// with the extension ".secret" — <dir>/latchkey.secret for latchkey.db.
// Keeping it beside the database (and not in a copy of it) means that the
// server and the CLI, whatever user or $HOME they run with, find the same
// file from the same storage setting, that two databases in one directory
// keep two secrets, and that a copy of the database alone carries no secret.
func SecretPath(dbPath string) string {
	dir, name := filepath.Split(dbPath)
	stem := strings.TrimSuffix(name, filepath.Ext(name))
	if stem == "" || stem+".secret" == name {
		stem = name
	}
	return filepath.Join(dir, stem+".secret")
}

// GenerateSecret returns a new secret: 64 lower-case hex digits (256 random
// bits), text that also works as a configured secret or secret_file.
func GenerateSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating secret: %w", err)
	}
	return []byte(hex.EncodeToString(b)), nil
}

// ReadSecretFile reads a secret file written by CreateSecretFile: its
// content, byte for byte (nothing is trimmed), is the secret. It refuses a
// file that group or others may access, and one shorter than MinSecretLen.
// A missing file is an error wrapping fs.ErrNotExist.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := readPrivate(path, "secret file")
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("latchkey secret file %s is empty; delete it to have a new secret generated (ending every session, code and link) or restore it from a backup", path)
	}
	if len(b) < MinSecretLen {
		return nil, fmt.Errorf("latchkey secret file %s holds %d bytes, fewer than the %d required", path, len(b), MinSecretLen)
	}
	return b, nil
}

// CreateSecretFile keeps secret in a new file at path, readable by its
// owner only, creating its directory (0700) if missing. It never replaces a
// file: if path exists already — another process starting at the same time
// won the race, or the file was there all along — it returns that file's
// secret instead, and created is false. A file appears complete or not at
// all: the secret is written to a temporary file in the same directory and
// then hard-linked into place.
func CreateSecretFile(path string, secret []byte) (got []byte, created bool, err error) {
	if len(secret) < MinSecretLen {
		return nil, false, fmt.Errorf("latchkey secret: %d bytes is too short; want at least %d", len(secret), MinSecretLen)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("latchkey secret file: %w", err)
	}
	tmpName, err := writeTemp(dir, secret, "")
	defer os.Remove(tmpName)
	if err != nil {
		return nil, false, fmt.Errorf("latchkey secret file: %w", err)
	}
	err = os.Link(tmpName, path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// No hard links here (some network or FUSE file systems): create
		// the file exclusively instead; a reader racing with the write is
		// covered by the retries in readWinner.
		err = createExclusive(path, secret)
	}
	switch {
	case err == nil:
		syncDir(dir)
		return bytes.Clone(secret), true, nil
	case errors.Is(err, fs.ErrExist):
		got, err := readWinner(path)
		return got, false, err
	default:
		return nil, false, fmt.Errorf("latchkey secret file: %w", err)
	}
}

func createExclusive(path string, secret []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(secret)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// readWinner reads the file another process has just created; a short read
// is retried for a moment, in case that process is still writing it.
func readWinner(path string) ([]byte, error) {
	var err error
	for range 20 {
		var b []byte
		if b, err = ReadSecretFile(path); err == nil {
			return b, nil
		}
		if fi, serr := os.Stat(path); serr != nil || fi.Size() >= MinSecretLen {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

// syncDir makes a new directory entry durable, where the platform allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// LegacySecret is a secret kept where an older latchkey kept it: in the
// store's meta table.
type LegacySecret interface {
	// Read returns the secret, or nil if there is none.
	Read(ctx context.Context) ([]byte, error)
	// Delete removes it; deleting none is not an error.
	Delete(ctx context.Context) error
}

// LoadGeneratedSecret returns the gateway's generated secret, kept in the
// file at path. On first start it generates one and creates the file; a
// secret an older version kept in the store (legacy, may be nil) is moved to
// the file instead, so that existing sessions, codes and links keep working,
// and is then deleted from the store. A store secret that differs from the
// file's is refused. Processes starting together agree on one secret.
func LoadGeneratedSecret(ctx context.Context, path string, legacy LegacySecret) ([]byte, error) {
	inFile, err := ReadSecretFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var old []byte
	if legacy != nil {
		if old, err = legacy.Read(ctx); err != nil {
			return nil, fmt.Errorf("latchkey: reading the secret kept in the store: %w", err)
		}
	}
	if inFile == nil {
		secret := old
		if secret == nil {
			if secret, err = GenerateSecret(); err != nil {
				return nil, err
			}
		}
		if inFile, _, err = CreateSecretFile(path, secret); err != nil {
			return nil, err
		}
	}
	if old == nil {
		return inFile, nil
	}
	if !bytes.Equal(old, inFile) {
		return nil, fmt.Errorf("latchkey: the store holds a secret that differs from the one in %s. "+
			"The store was probably copied from another gateway or restored from an old backup, or the file belongs to another store. "+
			"Restore the matching file, or to keep the file's secret delete the store's one (DELETE FROM meta WHERE key = 'secret'); "+
			"sessions, codes and links made with the other secret stop working", path)
	}
	if err := legacy.Delete(ctx); err != nil {
		return nil, fmt.Errorf("latchkey: moved the secret to %s but could not delete it from the store: %w", path, err)
	}
	return inFile, nil
}
