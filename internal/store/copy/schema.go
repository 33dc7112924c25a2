package copy

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// kind is what a column holds, whatever the engine calls it.
type kind int

const (
	kindInt kind = iota + 1
	kindBool
	kindText
	kindBlob
)

func (k kind) String() string {
	switch k {
	case kindInt:
		return "integer"
	case kindBool:
		return "boolean"
	case kindText:
		return "text"
	case kindBlob:
		return "bytes"
	}
	return "unknown"
}

type column struct {
	name string
	kind kind
	// identity: the column takes generated ids (SQLite's INTEGER PRIMARY
	// KEY, PostgreSQL's identity primary key) whose high-water mark the
	// copy carries over, so that no id is handed out twice.
	identity bool
}

// table is one table as one engine has it.
type table struct {
	name string
	// cols are the copied columns, in the engine's order. A PostgreSQL
	// identity column outside the primary key (seq: the insertion order,
	// which SQLite keeps as the implicit rowid) is not among them: it is
	// regenerated, rows being read and written in that order.
	cols []column
	pk   []string
	// order is what rows are read in: "rowid" (SQLite), the seq column
	// (PostgreSQL), else the primary key.
	order []string
	deps  []string // tables this one's foreign keys name
	// autoincrement: a SQLite table whose ids come from sqlite_sequence.
	autoincrement bool
}

func (t *table) colNames() []string {
	out := make([]string, len(t.cols))
	for i, c := range t.cols {
		out[i] = c.name
	}
	return out
}

func (t *table) identity() string {
	for _, c := range t.cols {
		if c.identity {
			return c.name
		}
	}
	return ""
}

// Tables that are not copied: the migrations' own bookkeeping, and the
// fan-out of revocations, which only says what running gateways must drop
// from their caches (a copy has no such gateways; the target's sequence of
// changes goes on from where it is).
var notCopied = map[string]bool{"schema_migrations": true, "changes": true}

// preferred breaks ties in the dependency order, so that the copy goes
// users, the roles of each site (roles), who holds them (user_roles),
// invites, sessions, links, tickets, audit, outbox, …
var preferred = []string{"meta", "users", "roles", "user_roles", "invites", "sessions", "links", "tickets", "audit", "outbox", "throttle"}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

// sqliteTables reads the schema of a SQLite database.
func sqliteTables(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (map[string]*table, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return nil, fmt.Errorf("reading tables: %w", err)
	}
	type def struct{ name, sql string }
	var defs []def
	for rows.Next() {
		var d def
		if err := rows.Scan(&d.name, &d.sql); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading tables: %w", err)
		}
		defs = append(defs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading tables: %w", err)
	}
	out := map[string]*table{}
	for _, d := range defs {
		upper := strings.ToUpper(d.sql)
		t := &table{name: d.name, autoincrement: strings.Contains(upper, "AUTOINCREMENT")}
		withoutRowid := strings.Contains(upper, "WITHOUT ROWID")
		crows, err := q.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`, d.name)
		if err != nil {
			return nil, fmt.Errorf("reading columns of %s: %w", d.name, err)
		}
		type pkcol struct {
			name string
			pos  int
		}
		var pks []pkcol
		for crows.Next() {
			var name, typ string
			var pk int
			if err := crows.Scan(&name, &typ, &pk); err != nil {
				crows.Close()
				return nil, fmt.Errorf("reading columns of %s: %w", d.name, err)
			}
			k, ok := sqliteKind(typ)
			if !ok {
				crows.Close()
				return nil, fmt.Errorf("column %s.%s has type %q, which the copy does not know", d.name, name, typ)
			}
			t.cols = append(t.cols, column{name: name, kind: k})
			if pk > 0 {
				pks = append(pks, pkcol{name, pk})
			}
		}
		crows.Close()
		if err := crows.Err(); err != nil {
			return nil, fmt.Errorf("reading columns of %s: %w", d.name, err)
		}
		sort.Slice(pks, func(i, j int) bool { return pks[i].pos < pks[j].pos })
		for _, p := range pks {
			t.pk = append(t.pk, p.name)
		}
		// A single INTEGER PRIMARY KEY of a rowid table is the rowid.
		if len(t.pk) == 1 && !withoutRowid {
			for i := range t.cols {
				if t.cols[i].name == t.pk[0] && t.cols[i].kind == kindInt {
					t.cols[i].identity = true
				}
			}
		}
		if withoutRowid {
			t.order = t.pk
		} else {
			t.order = []string{"rowid"}
		}
		frows, err := q.QueryContext(ctx, `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)`, d.name)
		if err != nil {
			return nil, fmt.Errorf("reading foreign keys of %s: %w", d.name, err)
		}
		for frows.Next() {
			var ref string
			if err := frows.Scan(&ref); err != nil {
				frows.Close()
				return nil, fmt.Errorf("reading foreign keys of %s: %w", d.name, err)
			}
			if ref != d.name {
				t.deps = append(t.deps, ref)
			}
		}
		frows.Close()
		if err := frows.Err(); err != nil {
			return nil, fmt.Errorf("reading foreign keys of %s: %w", d.name, err)
		}
		out[d.name] = t
	}
	return out, nil
}

// sqliteKind maps a declared type, by SQLite's affinity rules as the
// migrations use them.
func sqliteKind(typ string) (kind, bool) {
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "INT"):
		return kindInt, true
	case strings.Contains(t, "CHAR"), strings.Contains(t, "TEXT"), strings.Contains(t, "CLOB"):
		return kindText, true
	case t == "" || strings.Contains(t, "BLOB"):
		return kindBlob, true
	}
	return 0, false
}

func pgKind(typ string) (kind, bool) {
	switch typ {
	case "bigint", "integer", "smallint":
		return kindInt, true
	case "boolean":
		return kindBool, true
	case "text", "character varying", "character":
		return kindText, true
	case "bytea":
		return kindBlob, true
	}
	return 0, false
}

// pgTables reads the schema of the PostgreSQL database q is connected to,
// in its current schema.
func pgTables(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[string]*table, error) {
	out := map[string]*table{}
	rows, err := q.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type, c.is_identity = 'YES'
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}
	type col struct {
		table, name, typ string
		identity         bool
	}
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.name, &c.typ, &c.identity); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading columns: %w", err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}

	pks := map[string][]string{}
	rows, err = q.Query(ctx, `SELECT tc.table_name, k.column_name
		FROM information_schema.table_constraints tc
		JOIN information_schema.key_column_usage k
			ON k.constraint_schema = tc.constraint_schema AND k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name
		WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()
		ORDER BY tc.table_name, k.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("reading primary keys: %w", err)
	}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading primary keys: %w", err)
		}
		pks[t] = append(pks[t], c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading primary keys: %w", err)
	}

	deps := map[string][]string{}
	rows, err = q.Query(ctx, `SELECT DISTINCT cl.relname::text, rcl.relname::text
		FROM pg_constraint c
		JOIN pg_class cl ON cl.oid = c.conrelid
		JOIN pg_class rcl ON rcl.oid = c.confrelid
		JOIN pg_namespace n ON n.oid = cl.relnamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema()`)
	if err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}
	for rows.Next() {
		var t, ref string
		if err := rows.Scan(&t, &ref); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading foreign keys: %w", err)
		}
		if t != ref {
			deps[t] = append(deps[t], ref)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading foreign keys: %w", err)
	}

	for _, c := range cols {
		t := out[c.table]
		if t == nil {
			t = &table{name: c.table, pk: pks[c.table], deps: deps[c.table]}
			out[c.table] = t
		}
		inPK := slices.Contains(t.pk, c.name)
		if c.identity && !inPK {
			// The insertion order (seq), regenerated by the target.
			t.order = []string{c.name}
			continue
		}
		k, ok := pgKind(c.typ)
		if !ok {
			return nil, fmt.Errorf("column %s.%s has type %q, which the copy does not know", c.table, c.name, c.typ)
		}
		t.cols = append(t.cols, column{name: c.name, kind: k, identity: c.identity && inPK && len(t.pk) == 1})
	}
	for _, t := range out {
		if t.order == nil {
			t.order = t.pk
		}
	}
	return out, nil
}

// compareSchemas checks that source and target have the same tables with
// the same columns, and returns the source's tables to copy in dependency
// order (a table after every table its foreign keys name).
func compareSchemas(src, dst map[string]*table) ([]*table, error) {
	var problems []string
	names := func(m map[string]*table) []string {
		var out []string
		for n := range m {
			out = append(out, n)
		}
		sort.Strings(out)
		return out
	}
	for _, n := range names(src) {
		if dst[n] == nil {
			problems = append(problems, fmt.Sprintf("table %s is only in the source", n))
		}
	}
	for _, n := range names(dst) {
		if src[n] == nil {
			problems = append(problems, fmt.Sprintf("table %s is only in the target", n))
		}
	}
	for _, n := range names(src) {
		s, d := src[n], dst[n]
		if d == nil || notCopied[n] {
			continue
		}
		sc, dc := map[string]column{}, map[string]column{}
		for _, c := range s.cols {
			sc[c.name] = c
		}
		for _, c := range d.cols {
			dc[c.name] = c
		}
		for _, c := range s.cols {
			o, ok := dc[c.name]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("column %s.%s is only in the source", n, c.name))
			case !compatible(c.kind, o.kind):
				problems = append(problems, fmt.Sprintf("column %s.%s is %s in the source but %s in the target", n, c.name, c.kind, o.kind))
			}
		}
		for _, c := range d.cols {
			if _, ok := sc[c.name]; !ok {
				problems = append(problems, fmt.Sprintf("column %s.%s is only in the target", n, c.name))
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("the two stores' schemas differ: %s", strings.Join(problems, "; "))
	}

	// Topological order, ties broken by preferred, then by name.
	rank := func(n string) int {
		if i := slices.Index(preferred, n); i >= 0 {
			return i
		}
		return len(preferred)
	}
	var todo []string
	for _, n := range names(src) {
		if !notCopied[n] {
			todo = append(todo, n)
		}
	}
	sort.SliceStable(todo, func(i, j int) bool { return rank(todo[i]) < rank(todo[j]) })
	var order []*table
	done := map[string]bool{}
	for len(todo) > 0 {
		progressed := false
		for i, n := range todo {
			ready := true
			for _, dep := range src[n].deps {
				if !done[dep] && !notCopied[dep] {
					ready = false
					break
				}
			}
			if ready {
				order = append(order, src[n])
				done[n] = true
				todo = slices.Delete(todo, i, i+1)
				progressed = true
				break
			}
		}
		if !progressed {
			return nil, fmt.Errorf("the tables' foreign keys form a cycle among %s", strings.Join(todo, ", "))
		}
	}
	return order, nil
}

// compatible: SQLite keeps booleans as integers.
func compatible(a, b kind) bool {
	if a == b {
		return true
	}
	return (a == kindInt && b == kindBool) || (a == kindBool && b == kindInt)
}
