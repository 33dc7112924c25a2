package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// TestBackupWhileWriting takes a backup while another handle on the file
// (as another gateway process) keeps committing sessions, audit records and
// invites. The backup must be a sound database holding every row committed
// before it began — rows still in the WAL included, which a copy of the
// file would miss — and open as a latchkey store of the same version.
func TestBackupWhileWriting(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db := filepath.Join(dir, "latchkey.db")
	s, err := Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	u := &store.User{Email: "writer@example.com", Active: true}
	if err := other.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}

	var committed atomic.Int64 // rows 0..committed-1 of each kind are committed
	warm := make(chan struct{})
	stop := make(chan struct{})
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		now := time.Now()
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if werr = writeRows(ctx, other, u.ID, i, now); werr != nil {
				return
			}
			committed.Store(i + 1)
			if i == 200 {
				close(warm)
			}
		}
	})
	select {
	case <-warm:
	case <-time.After(time.Minute):
		t.Fatalf("the writer did not get going: %v", werr)
	}
	before := committed.Load()
	target := filepath.Join(dir, "backups", "latchkey-backup.db")
	if err := os.Mkdir(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	info, err := s.Backup(ctx, target)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if werr != nil {
		t.Fatalf("the writer failed: %v", werr)
	}
	if info.Path != target || info.SchemaVersion != SchemaVersion {
		t.Errorf("BackupInfo %+v, want path %s at schema version %d", info, target, SchemaVersion)
	}
	fi, err := os.Stat(target)
	if err != nil || fi.Size() != info.Size || info.Size == 0 {
		t.Fatalf("backup file %v (%v), info says %d bytes", fi, err, info.Size)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600: it holds users and credential hashes", fi.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 1 {
		t.Errorf("%d entries beside the backup, want it alone (no temporary file left)", len(ents))
	}

	raw, err := sql.Open("sqlite", "file:"+EscapePath(target)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var check string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check on the backup: %q, %v", check, err)
	}
	for kind, q := range map[string]string{
		"sessions":      `SELECT count(*) FROM sessions WHERE id IN (%s)`,
		"audit records": `SELECT count(*) FROM audit WHERE path IN (%s)`,
		"invites":       `SELECT count(*) FROM invites WHERE email IN (%s)`,
	} {
		var in bytes.Buffer
		for i := range before {
			if i > 0 {
				in.WriteByte(',')
			}
			switch kind {
			case "sessions":
				fmt.Fprintf(&in, "'s-%d'", i)
			case "audit records":
				fmt.Fprintf(&in, "'/row/%d'", i)
			default:
				fmt.Fprintf(&in, "'invitee-%d@example.com'", i)
			}
		}
		var n int64
		if err := raw.QueryRow(fmt.Sprintf(q, in.String())).Scan(&n); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if n != before {
			t.Errorf("the backup holds %d of the %d %s committed before it began", n, before, kind)
		}
	}
	raw.Close()

	// It opens as a latchkey store, at the same version, with its data.
	b, err := Open(ctx, target)
	if err != nil {
		t.Fatalf("opening the backup as a store: %v", err)
	}
	defer b.Close()
	if v, err := b.SchemaVersion(ctx); err != nil || v != SchemaVersion {
		t.Errorf("backup schema version %d (%v), want %d", v, err, SchemaVersion)
	}
	if got, err := b.UserByEmail(ctx, "", "writer@example.com"); err != nil || got.ID != u.ID {
		t.Errorf("the backup's user: %+v, %v", got, err)
	}
}

// writeRows commits row i of each kind, each in its own transaction.
func writeRows(ctx context.Context, st store.Store, userID, i int64, now time.Time) error {
	hash := []byte(fmt.Sprintf("token-hash-%026d", i))
	if err := st.CreateSession(ctx, &store.Session{
		ID: fmt.Sprintf("s-%d", i), UserID: userID, Site: "example.com", TokenHash: hash,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour),
	}); err != nil {
		return fmt.Errorf("session %d: %w", i, err)
	}
	if err := st.WriteAudit(ctx, []store.AuditEvent{{
		Time: now, Kind: "session", Outcome: store.OutcomeAccepted, Method: "GET", Host: "example.com",
		Path: fmt.Sprintf("/row/%d", i), Status: 200,
	}}); err != nil {
		return fmt.Errorf("audit %d: %w", i, err)
	}
	if err := st.CreateInvite(ctx, &store.Invite{
		Site: "example.com", Email: fmt.Sprintf("invitee-%d@example.com", i),
		CodeHash: []byte(fmt.Sprintf("code-hash-%027d", i)), CreatedAt: now, CreatedBy: "cli",
	}); err != nil {
		return fmt.Errorf("invite %d: %w", i, err)
	}
	return nil
}

// An existing file is never replaced, whatever it holds, and no temporary
// file is left beside it.
func TestBackupRefusesExistingFile(t *testing.T) {
	s := openTemp(t)
	dir := t.TempDir()
	for name, content := range map[string][]byte{"empty": nil, "other": []byte("someone's file")} {
		target := filepath.Join(dir, name)
		if err := os.WriteFile(target, content, 0o640); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Stat(target)
		_, err := s.Backup(t.Context(), target)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("backup onto the %s file: %v, want fs.ErrExist", name, err)
		}
		after, _ := os.Stat(target)
		got, _ := os.ReadFile(target)
		if !bytes.Equal(got, content) || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("the refused backup changed the %s file: %q, %v", name, got, after.Mode())
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d entries, want the two files alone", len(ents))
	}
	// The store's own file too.
	if _, err := s.Backup(t.Context(), s.path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("backup onto the live database: %v", err)
	}
}
