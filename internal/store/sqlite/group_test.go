package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Concurrent writers share transactions, and each keeps its own result: a
// failing writer's rows are undone, its neighbours' are kept.
func TestGroupCommitKeepsEachResult(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE gt (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	var sizes sync.Map // batch sizes seen, through a probe on the committer
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	boom := errors.New("boom")
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				var inTx int
				// How many writers' rows this transaction already holds
				// beyond this one's shows that groups form.
				tx.QueryRowContext(ctx, `SELECT count(*) FROM gt`).Scan(&inTx)
				sizes.Store(inTx, true)
				if _, err := tx.ExecContext(ctx, `INSERT INTO gt (n) VALUES (?)`, i); err != nil {
					return err
				}
				if i%3 == 0 {
					return fmt.Errorf("writer %d: %w", i, boom)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%3 == 0) != errors.Is(err, boom) || (i%3 != 0 && err != nil) {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT n FROM gt`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int]bool{}
	for rows.Next() {
		var v int
		rows.Scan(&v)
		got[v] = true
	}
	for i := range n {
		if got[i] == (i%3 == 0) {
			t.Errorf("row %d present=%v, want %v", i, got[i], i%3 != 0)
		}
	}
	// A caller whose context ended before its turn writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.inTx(cctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gt (n) VALUES (-1)`)
		return err
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	var neg int
	s.r.QueryRowContext(ctx, `SELECT count(*) FROM gt WHERE n = -1`).Scan(&neg)
	if neg != 0 {
		t.Error("a cancelled caller's write was committed")
	}
	// After Close, callers get an error rather than hanging.
	s.Close()
	if err := s.inTx(ctx, func(context.Context, *sql.Tx) error { return nil }); err == nil {
		t.Error("write after Close succeeded")
	}
}
