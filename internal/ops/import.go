package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/latchkeyhq/latchkey/internal/mail"
	"github.com/latchkeyhq/latchkey/internal/password"
	"github.com/latchkeyhq/latchkey/internal/store"
)

// Import formats.
const (
	ImportJSONL = "jsonl" // one JSON object per line
	ImportCSV   = "csv"   // a header row naming the columns, then one user a row
)

// Bounds on an import file.
const (
	// MaxImportLineBytes bounds one line of the file (of a CSV file, one
	// physical line, even inside a quoted field).
	MaxImportLineBytes = 64 << 10
	// MaxImportRows bounds the users of one file; a larger export is
	// imported in parts.
	MaxImportRows = 1_000_000
	// maxListedBadLines bounds how many bad lines an ImportError lists.
	maxListedBadLines = 100
)

// importFields are the fields of a row, as JSON keys and CSV column names.
var importFields = []string{"email", "name", "phone", "site", "roles", "password_hash"}

// ImportFormat is the format of an import file: the one asked for, or else
// the one its name's extension says (.jsonl or .json for JSON Lines, .csv).
func ImportFormat(path, asked string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(asked)); f {
	case ImportJSONL, ImportCSV:
		return f, nil
	case "":
	default:
		return "", inputErr("format %q: want jsonl or csv", asked)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".json":
		return ImportJSONL, nil
	case ".csv":
		return ImportCSV, nil
	}
	return "", inputErr("cannot tell the format of %q from its extension; name it with --format jsonl or --format csv", path)
}

// ImportResult is what an import did, or with DryRun what it would do.
type ImportResult struct {
	DryRun bool `json:"dry_run"`
	// Rows are the users in the file.
	Rows int `json:"rows"`
	// Imported users were created (with DryRun, would be).
	Imported int `json:"imported"`
	// SkippedExisting rows name a user that exists on its site: it was
	// left as it was, not overwritten.
	SkippedExisting int `json:"skipped_existing"`
	// Schemes counts the imported users by the scheme of their password
	// hash (password.Scheme's names).
	Schemes map[string]int `json:"schemes"`
	// WithoutPassword counts imported users with no usable hash: an empty
	// password_hash, or Django's unusable "!…" mark.
	WithoutPassword int `json:"without_password"`
}

// ImportLineError is why one line of an import file was refused.
type ImportLineError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ImportError refuses a whole import: every bad line, with its reason. No
// reason contains a password hash.
type ImportError struct {
	Lines []ImportLineError
	// More counts the bad lines left out of Lines.
	More int
}

func (e *ImportError) Error() string {
	var b strings.Builder
	n := len(e.Lines) + e.More
	fmt.Fprintf(&b, "nothing imported: %d bad line", n)
	if n != 1 {
		b.WriteString("s")
	}
	for _, l := range e.Lines {
		fmt.Fprintf(&b, "\n  line %d: %s", l.Line, l.Reason)
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n  … and %d more", e.More)
	}
	return b.String()
}

func (e *ImportError) add(line int, format string, args ...any) {
	e.Lines = append(e.Lines, ImportLineError{Line: line, Reason: fmt.Sprintf(format, args...)})
}

// sorted puts the bad lines in file order and keeps the first
// maxListedBadLines.
func (e *ImportError) sorted() *ImportError {
	sort.SliceStable(e.Lines, func(i, j int) bool { return e.Lines[i].Line < e.Lines[j].Line })
	if n := len(e.Lines); n > maxListedBadLines {
		e.More, e.Lines = n-maxListedBadLines, e.Lines[:maxListedBadLines]
	}
	return e
}

// importRow is one row as read, before it is checked.
type importRow struct {
	line                                   int
	email, name, phone, site, passwordHash string
	roles                                  []string
}

// ImportUsers creates the users of an import file (format ImportJSONL or
// ImportCSV), with their password hashes as a legacy application stored
// them; defaultSite is the site of rows that name none. Every row is checked
// before anything is written: if any is bad, nothing is imported and the
// error is an *ImportError listing them. A user that exists on its site is
// skipped and counted, never overwritten, so an import that stopped half
// way can be run again. Roles that do not exist on their site are created,
// as AddUser does. With dryRun, nothing is written and the result says what
// would be.
func (o *Ops) ImportUsers(ctx context.Context, r io.Reader, format, defaultSite string, dryRun bool) (ImportResult, error) {
	res := ImportResult{DryRun: dryRun, Schemes: map[string]int{}}
	var rows []importRow
	var bad ImportError
	var err error
	switch format {
	case ImportJSONL:
		rows, err = readJSONL(r, &bad)
	case ImportCSV:
		rows, err = readCSV(r, &bad)
	default:
		return res, inputErr("import format %q: want jsonl or csv", format)
	}
	if err != nil {
		return res, err
	}
	if len(rows) == 0 && len(bad.Lines) == 0 {
		return res, inputErr("the file holds no users")
	}
	res.Rows = len(rows)

	users := checkImport(rows, strings.ToLower(strings.TrimSpace(defaultSite)), &bad)
	if len(bad.Lines) > 0 {
		return res, bad.sorted()
	}

	existing, err := o.Store.Users(ctx)
	if err != nil {
		return res, fmt.Errorf("listing users: %w", err)
	}
	known := make(map[[2]string]bool, len(existing))
	for _, u := range existing {
		known[[2]string{u.Site, u.Email}] = true
	}
	var todo []*store.User
	var roles []store.Role
	seenRole := map[store.Role]bool{}
	for _, u := range users {
		if known[[2]string{u.Site, u.Email}] {
			res.SkippedExisting++
			continue
		}
		todo = append(todo, u)
		for _, r := range u.Roles {
			if !seenRole[r] {
				seenRole[r] = true
				roles = append(roles, r)
			}
		}
	}
	if dryRun {
		for _, u := range todo {
			res.count(u)
		}
		return res, nil
	}
	if err := o.ensureRoles(ctx, roles); err != nil {
		return res, fmt.Errorf("importing users: %w", err)
	}
	for _, u := range todo {
		err := o.Store.CreateUser(ctx, u)
		switch {
		case errors.Is(err, store.ErrConflict): // created since the listing
			res.SkippedExisting++
		case err != nil:
			return res, fmt.Errorf("importing users: %d imported before %s on site %q failed (running the import again skips those): %w",
				res.Imported, u.Email, u.Site, err)
		default:
			res.count(u)
		}
	}
	return res, nil
}

func (res *ImportResult) count(u *store.User) {
	res.Imported++
	if u.PasswordHash == "" {
		res.WithoutPassword++
		return
	}
	scheme, _ := password.Scheme(u.PasswordHash) // checked already
	res.Schemes[scheme]++
}

// checkImport turns rows into users, noting each bad row in bad.
func checkImport(rows []importRow, defaultSite string, bad *ImportError) []*store.User {
	users := make([]*store.User, 0, len(rows))
	first := map[[2]string]int{} // site and address → line
	for _, row := range rows {
		email, ok := mail.NormalizeAddress(row.email)
		if !ok {
			switch {
			case strings.TrimSpace(row.email) == "":
				bad.add(row.line, "no email")
			case strings.Contains(row.email, "$"): // perhaps a hash in the wrong column: not shown
				bad.add(row.line, "email is not an email address (%d bytes, with a '$')", len(row.email))
			default:
				bad.add(row.line, "email %q is not an email address", clip(row.email))
			}
			continue
		}
		u := &store.User{
			Site:   strings.ToLower(strings.TrimSpace(row.site)),
			Email:  email,
			Name:   strings.TrimSpace(row.name),
			Phone:  strings.TrimSpace(row.phone),
			Active: true,
		}
		if u.Site == "" {
			u.Site = defaultSite
		}
		key := [2]string{u.Site, u.Email}
		if l, dup := first[key]; dup {
			bad.add(row.line, "%s on site %q is also on line %d", email, u.Site, l)
			continue
		}
		first[key] = row.line
		var roleErr error
		for _, r := range row.roles {
			if strings.TrimSpace(r) == "" {
				continue
			}
			role, err := ParseRole(u.Site, r)
			if err != nil {
				roleErr = err
				break
			}
			if !containsRole(u.Roles, role) {
				u.Roles = append(u.Roles, role)
			}
		}
		if roleErr != nil {
			bad.add(row.line, "%v", roleErr)
			continue
		}
		h := strings.TrimSpace(row.passwordHash)
		if h != "" {
			if err := password.Check(h); errors.Is(err, password.ErrUnusablePassword) {
				h = "" // Django's user without a password: imported without one
			} else if err != nil {
				bad.add(row.line, "password_hash: %v", err)
				continue
			}
		}
		u.PasswordHash = h
		users = append(users, u)
	}
	return users
}

func containsRole(rs []store.Role, r store.Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// clip shortens what a bad line held, for its error.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readJSONL reads one JSON object a line; blank lines are skipped. A line
// that is not a row of ours is noted in bad; a line too long, too many rows
// or a failed read end the reading with an error.
func readJSONL(r io.Reader, bad *ImportError) ([]importRow, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxImportLineBytes+1) // +1: the newline
	var rows []importRow
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\uFEFF"))
		}
		if len(b) == 0 {
			continue
		}
		if len(rows)+len(bad.Lines) >= MaxImportRows {
			return nil, inputErr("line %d: the file holds more than %d users; import it in parts", line, MaxImportRows)
		}
		var in struct {
			Email        *string  `json:"email"`
			Name         string   `json:"name"`
			Phone        string   `json:"phone"`
			Site         string   `json:"site"`
			Roles        []string `json:"roles"`
			PasswordHash string   `json:"password_hash"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			bad.add(line, "%s", jsonReason(err))
			continue
		}
		if _, err := dec.Token(); err != io.EOF {
			bad.add(line, "something follows the JSON object")
			continue
		}
		row := importRow{line: line, name: in.Name, phone: in.Phone, site: in.Site, roles: in.Roles, passwordHash: in.PasswordHash}
		if in.Email != nil {
			row.email = *in.Email
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, inputErr("line %d: longer than %d bytes", line+1, MaxImportLineBytes)
	} else if err != nil {
		return nil, fmt.Errorf("reading the file: %w", err)
	}
	return rows, nil
}

// jsonReason says why a line is not a row, without quoting the line: a
// type error names the field, a syntax error its offset.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field == "":
		return "not a JSON object"
	case errors.As(err, &te) && te.Field == "roles":
		return "roles: want an array of strings"
	case errors.As(err, &te):
		return fmt.Sprintf("%s: want a string", te.Field)
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON (at byte %d)", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Sprintf("unknown field %s; the fields are %s", strings.TrimPrefix(err.Error(), "json: unknown field "), strings.Join(importFields, ", "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON (it ends early)"
	}
	return "not valid JSON"
}

// readCSV reads a header naming the columns (any of importFields, in any
// order, email required), then a user a record. Roles are ';'-separated.
func readCSV(r io.Reader, bad *ImportError) ([]importRow, error) {
	lr := &lineLimitReader{r: bufio.NewReader(r), line: 1}
	cr := csv.NewReader(lr)
	cr.FieldsPerRecord = 0 // as many as the header
	header, err := cr.Read()
	if err == io.EOF {
		return nil, inputErr("the file holds no users (not even a header)")
	}
	if err != nil {
		return nil, csvErr(lr, err)
	}
	col := map[string]int{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF")
		}
		known := false
		for _, f := range importFields {
			known = known || f == name
		}
		switch _, dup := col[name]; {
		case !known:
			return nil, inputErr("line 1: unknown column %q; the columns are %s", clip(h), strings.Join(importFields, ", "))
		case dup:
			return nil, inputErr("line 1: column %q appears twice", name)
		}
		col[name] = i
	}
	if _, ok := col["email"]; !ok {
		return nil, inputErr("line 1: no email column; the header names the columns (%s)", strings.Join(importFields, ", "))
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var rows []importRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
			bad.add(pe.StartLine, "%d fields, want %d as in the header", len(rec), len(header))
			continue
		}
		if err != nil {
			return nil, csvErr(lr, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rows)+len(bad.Lines) >= MaxImportRows {
			return nil, inputErr("line %d: the file holds more than %d users; import it in parts", line, MaxImportRows)
		}
		rows = append(rows, importRow{
			line: line, email: get(rec, "email"), name: get(rec, "name"), phone: get(rec, "phone"),
			site: get(rec, "site"), roles: strings.Split(get(rec, "roles"), ";"), passwordHash: get(rec, "password_hash"),
		})
	}
	return rows, nil
}

// csvErr reports a CSV error the reading cannot go past: a line too long,
// a malformed quote (with its line), or a failed read.
func csvErr(lr *lineLimitReader, err error) error {
	var pe *csv.ParseError
	switch {
	case errors.Is(err, errLineTooLong):
		return inputErr("line %d: longer than %d bytes", lr.line, MaxImportLineBytes)
	case errors.As(err, &pe):
		return inputErr("line %d: %v; nothing imported", pe.Line, pe.Err)
	}
	return fmt.Errorf("reading the file: %w", err)
}

var errLineTooLong = errors.New("line too long")

// lineLimitReader fails a read once a line exceeds MaxImportLineBytes, and
// counts lines for that error.
type lineLimitReader struct {
	r    *bufio.Reader
	line int // the line being read, from 1
	cur  int // bytes of it so far
}

func (l *lineLimitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i, c := range p[:n] {
		if c == '\n' {
			l.line++
			l.cur = 0
			continue
		}
		l.cur++
		if l.cur > MaxImportLineBytes {
			return i, errLineTooLong
		}
	}
	return n, err
}
