// Package migration reads a store's embedded schema migrations: files named
// NNNN_name.sql, applied in order, numbered 1, 2, 3… without gaps, so that
// every engine can say which schema version a database has. Applying them
// is the engine's (its DDL and locking differ).
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
)

// Migration is one file.
type Migration struct {
	Version int
	Name    string // file name, for error messages
	SQL     string
}

var fileName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// Load reads migrations/*.sql from fsys, sorted by version, and insists on
// versions 1..n without gaps or duplicates.
func Load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, p := range names {
		name := path.Base(p)
		m := fileName.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", name)
		}
		v, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %q has version %d, want %d (versions must run 1, 2, 3... without gaps)", m.Name, m.Version, i+1)
		}
	}
	return ms, nil
}

// MustLoad is Load for a binary's own migrations, whose newest must be
// latest (the store's SchemaVersion): a mistake there is the build's, so it
// panics, and every test of the store fails at once.
func MustLoad(fsys fs.FS, store string, latest int) []Migration {
	ms, err := Load(fsys)
	if err != nil {
		panic("latchkey " + store + " store: " + err.Error())
	}
	if len(ms) == 0 || ms[len(ms)-1].Version != latest {
		panic(fmt.Sprintf("latchkey %s store: SchemaVersion is %d but the newest embedded migration is %d", store, latest, len(ms)))
	}
	return ms
}

// SchemaTooNewError is returned when the database was migrated by a newer
// latchkey. Nothing is changed in that case, so the newer binary can keep
// using the database.
type SchemaTooNewError struct {
	Database int // newest version applied to the database
	Binary   int // newest version this binary knows
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this binary supports (%d); upgrade latchkey or point it at another database", e.Database, e.Binary)
}
