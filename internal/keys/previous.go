package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// MaxPreviousSecrets bounds the secrets kept after a rotation. Every
// credential that is not found under the current secret is looked up once
// under each previous one, so this also bounds what an unknown cookie or
// code costs.
const MaxPreviousSecrets = 4

// PreviousSecretsPath is where the secrets rotated out of the generated
// secret at secretPath are kept until retired: beside it, with the
// extension ".previous-secrets" (latchkey.previous-secrets beside
// latchkey.secret).
func PreviousSecretsPath(secretPath string) string {
	if name := filepath.Base(secretPath); name != ".secret" && strings.HasSuffix(name, ".secret") {
		return strings.TrimSuffix(secretPath, ".secret") + ".previous-secrets"
	}
	return secretPath + ".previous-secrets"
}

// Fingerprint names a secret without revealing it: the first 8 hex digits
// of HMAC-SHA256(secret, "latchkey/fingerprint"), enough to tell an
// operator's few secrets apart and useless for guessing one.
func Fingerprint(secret []byte) string {
	return hex.EncodeToString(Derive(secret, "fingerprint"))[:8]
}

// ReadPreviousSecrets reads a previous-secrets file: one secret a line,
// newest first, as WritePreviousSecrets writes it. A missing file is no
// previous secrets (nil, nil). Like the secret file it must be readable by
// its owner only. A line that cannot be a secret is an error naming the
// file and the line; blank lines are skipped.
func ReadPreviousSecrets(path string) ([][]byte, error) {
	b, err := readPrivate(path, "previous secrets file")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s, err := decodeSecretLine(line)
		if err != nil {
			return nil, fmt.Errorf("latchkey previous secrets file %s, line %d: %w; fix or delete the line (what was made under that secret stops working), or retire them all: caddy latchkey secret retire", path, i+1, err)
		}
		out = append(out, s)
	}
	if len(out) > MaxPreviousSecrets {
		return nil, fmt.Errorf("latchkey previous secrets file %s holds %d secrets, more than the %d latchkey checks; retire them: caddy latchkey secret retire", path, len(out), MaxPreviousSecrets)
	}
	return out, nil
}

// A line is the secret itself when that is printable ASCII without ':'
// (generated secrets are hex); anything else (a secret an older latchkey
// kept in the store is raw bytes) is "base64:" and the standard base64 of
// it. The ':' keeps the two forms apart.
const base64Prefix = "base64:"

func encodeSecretLine(s []byte) string {
	for _, c := range s {
		if c <= ' ' || c > '~' || c == ':' {
			return base64Prefix + base64.StdEncoding.EncodeToString(s)
		}
	}
	return string(s)
}

func decodeSecretLine(line string) ([]byte, error) {
	var s []byte
	if strings.Contains(line, ":") {
		enc, ok := strings.CutPrefix(line, base64Prefix)
		if !ok {
			return nil, fmt.Errorf("not a secret: a line with ':' must be %q and base64", base64Prefix)
		}
		var err error
		if s, err = base64.StdEncoding.Strict().DecodeString(enc); err != nil {
			return nil, fmt.Errorf("bad base64 after %q", base64Prefix)
		}
	} else {
		for _, c := range []byte(line) {
			if c <= ' ' || c > '~' {
				return nil, errors.New("not a secret: a control or non-ASCII character (such secrets are written as base64:…)")
			}
		}
		s = []byte(line)
	}
	if len(s) < MinSecretLen {
		// The length only: the line is a secret, or part of one.
		return nil, fmt.Errorf("a secret of %d bytes, fewer than the %d required", len(s), MinSecretLen)
	}
	return s, nil
}

// WritePreviousSecrets replaces the previous-secrets file at path with
// secrets, newest first, atomically (see writeAtomic); owner is the secret
// file whose owner it takes, when the process may give it (root).
func WritePreviousSecrets(path string, secrets [][]byte, owner string) error {
	var b strings.Builder
	for _, s := range secrets {
		b.WriteString(encodeSecretLine(s))
		b.WriteByte('\n')
	}
	if err := writeAtomic(path, []byte(b.String()), owner); err != nil {
		return fmt.Errorf("latchkey previous secrets file: %w", err)
	}
	return nil
}

// Rotation is what RotateGeneratedSecret did.
type Rotation struct {
	Current  []byte   // the new secret, now in the secret file
	Previous [][]byte // newest first, the old current one first
}

// RotateGeneratedSecret starts a new generated secret in the file at
// secretPath. The secret it held goes first in the previous-secrets file
// beside it, so that what was made under it keeps working until retired.
// The previous file is written first and the secret file replaced after:
// a crash between them leaves the old secret both current and previous,
// which loading takes as the old secret alone — nothing is lost. It refuses
// when MaxPreviousSecrets are kept already.
//
// Two rotations at once may lose one of the two new secrets; nothing was
// made under it before a gateway loads it, so run them one at a time.
func RotateGeneratedSecret(secretPath string) (Rotation, error) {
	cur, err := ReadSecretFile(secretPath)
	if err != nil {
		return Rotation{}, err
	}
	prevPath := PreviousSecretsPath(secretPath)
	prev, err := ReadPreviousSecrets(prevPath)
	if err != nil {
		return Rotation{}, err
	}
	kept := Distinct(cur, prev)
	if len(kept)+1 > MaxPreviousSecrets {
		return Rotation{}, fmt.Errorf("latchkey: %d previous secrets are kept in %s already, the most latchkey checks; retire them first (caddy latchkey secret retire), once what was made under them has expired", len(kept), prevPath)
	}
	next, err := GenerateSecret()
	if err != nil {
		return Rotation{}, err
	}
	all := append([][]byte{cur}, kept...)
	if err := WritePreviousSecrets(prevPath, all, secretPath); err != nil {
		return Rotation{}, err
	}
	if err := writeAtomic(secretPath, next, secretPath); err != nil {
		return Rotation{}, fmt.Errorf("latchkey secret file: %w (the old secret is kept in %s; nothing was lost)", err, prevPath)
	}
	return Rotation{Current: next, Previous: all}, nil
}

// RetirePreviousSecrets deletes the previous-secrets file beside the
// secret file at secretPath, so that nothing made under those secrets is
// accepted once the gateways reload, and reports how many it held. It
// deletes a file it cannot read too: retiring is the way out of a bad one.
func RetirePreviousSecrets(secretPath string) (int, error) {
	prevPath := PreviousSecretsPath(secretPath)
	n := -1 // unknown: the file cannot be read
	if prev, err := ReadPreviousSecrets(prevPath); err == nil {
		n = len(prev)
	}
	switch err := os.Remove(prevPath); {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("latchkey previous secrets file: %w", err)
	}
	syncDir(filepath.Dir(prevPath))
	return n, nil
}

// Distinct is secrets without current and without repeats, in order.
func Distinct(current []byte, secrets [][]byte) [][]byte {
	var out [][]byte
	for _, s := range secrets {
		dup := current != nil && bytes.Equal(s, current)
		for _, o := range out {
			dup = dup || bytes.Equal(s, o)
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

// FileTime is the modification time of the file at path, zero if it
// cannot be read.
func FileTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// readPrivate reads a file that must be readable by its owner only. A
// missing file is an error wrapping fs.ErrNotExist.
func readPrivate(path, what string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("latchkey %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("latchkey %s %s is not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("latchkey %s %s is accessible to group or others (mode %04o); it must be readable by its owner only: chmod 600 %s", what, path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("latchkey %s: %w", what, err)
	}
	return b, nil
}

// writeAtomic replaces the file at path with data: written to a temporary
// file (0600) in the same directory, synced, renamed over path, and the
// directory synced, so that a reader or a crash sees the old content or
// the new, never part of one. The new file takes the owner of the file at
// owner when the process may give it, so that a rotation run with sudo
// leaves files the gateway's user can still read.
func writeAtomic(path string, data []byte, owner string) error {
	dir := filepath.Dir(path)
	tmpName, err := writeTemp(dir, data, owner)
	defer os.Remove(tmpName)
	if err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// writeTemp writes data to a new temporary file (0600) in dir, owned like
// the file at owner when one is named and the process may give it, and
// synced: ready to be linked or renamed into place. The caller removes
// tmpName (set whenever the file was created) once done with it.
func writeTemp(dir string, data []byte, owner string) (tmpName string, err error) {
	tmp, err := os.CreateTemp(dir, ".latchkey-secret-*.tmp") // mode 0600
	if err != nil {
		return "", err
	}
	tmpName = tmp.Name()
	if owner != "" {
		if fi, err := os.Stat(owner); err == nil {
			chownLike(tmp, fi)
		}
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return tmpName, fmt.Errorf("writing %s: %w", tmpName, err)
	}
	return tmpName, nil
}
