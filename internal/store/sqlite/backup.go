package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/latchkeyhq/latchkey/internal/store"
)

var _ store.Backuper = (*Store)(nil)

// Backup writes a consistent snapshot of the database to a new file at path
// with VACUUM INTO, which reads in one transaction: in WAL mode the
// gateways' writers go on meanwhile, and the copy holds exactly what was
// committed when it began, including what is still only in the WAL (which
// copying the file would miss). The file is owner-only (0600): it holds
// the users and the keyed hashes of their credentials.
func (s *Store) Backup(ctx context.Context, path string) (store.BackupInfo, error) {
	info, err := s.backup(ctx, path)
	if err != nil {
		return store.BackupInfo{}, fmt.Errorf("latchkey sqlite backup to %s: %w", path, err)
	}
	return info, nil
}

func (s *Store) backup(ctx context.Context, path string) (store.BackupInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return store.BackupInfo{}, err
	}
	if _, err := os.Lstat(abs); err == nil {
		return store.BackupInfo{}, fmt.Errorf("the file exists; a backup never replaces a file, choose a new name: %w", fs.ErrExist)
	}
	src, err := filepath.Abs(s.path)
	if err != nil {
		return store.BackupInfo{}, err
	}
	// Written beside the target and linked into place only when complete
	// and on disk, so that an interrupted backup never leaves a file that
	// looks like one. VACUUM INTO accepts an existing empty file.
	tmp, err := os.CreateTemp(filepath.Dir(abs), ".latchkey-backup-*.tmp")
	if err != nil {
		return store.BackupInfo{}, err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Close(); err != nil {
		return store.BackupInfo{}, err
	}
	if err := vacuumInto(ctx, src, tmpName); err != nil {
		return store.BackupInfo{}, err
	}
	// SQLite does not sync what VACUUM INTO writes.
	if err := syncFile(tmpName); err != nil {
		return store.BackupInfo{}, err
	}
	if err := linkNew(tmpName, abs); err != nil {
		return store.BackupInfo{}, err
	}
	syncDir(filepath.Dir(abs))
	fi, err := os.Stat(abs)
	if err != nil {
		return store.BackupInfo{}, err
	}
	v, err := backupSchemaVersion(ctx, abs)
	if err != nil {
		return store.BackupInfo{}, fmt.Errorf("the backup was written but cannot be read back: %w", err)
	}
	return store.BackupInfo{Path: abs, Size: fi.Size(), SchemaVersion: v}, nil
}

// vacuumInto runs on a connection of its own: the readers are query_only,
// which refuses VACUUM INTO, and the writer must stay free for the
// process's writes while a big database is copied.
func vacuumInto(ctx context.Context, src, dst string) error {
	db, err := sql.Open("sqlite", "file:"+EscapePath(src)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("VACUUM INTO: %w", err)
	}
	return db.Close()
}

// linkNew puts the finished file at path unless something is there
// already: a hard link fails rather than replace, where a rename would not.
func linkNew(tmp, path string) error {
	appeared := fmt.Errorf("the file appeared while the backup was written; it was left as it is: %w", fs.ErrExist)
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return appeared
	}
	// No hard links on this file system (some network and FUSE ones):
	// check and rename, which leaves a moment for a file to appear.
	if _, err := os.Lstat(path); err == nil {
		return appeared
	}
	return os.Rename(tmp, path)
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new directory entry durable, where the platform allows.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// backupSchemaVersion reads the backup's schema version read-only, which
// also shows that the file opens as a database.
func backupSchemaVersion(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+EscapePath(path)+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var v int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}
