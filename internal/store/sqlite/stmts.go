package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCache prepares each query once on its pool and keeps it: SQLite
// compiles a statement on every unprepared call, which was a fifth of the
// cost of a consumption. Queries are the package's own constants, so the
// cache is bounded by the code.
//
// The writer pool has one connection, which a transaction holds: preparing
// on it from inside a transaction would wait for ever. A deferred cache
// (the writer's) therefore only notes a query it does not have yet, and
// the committer prepares what was noted between transactions (prepareNoted);
// meanwhile the query runs unprepared.
type stmtCache struct {
	db       *sql.DB
	deferred bool
	mu       sync.RWMutex
	m        map[string]*sql.Stmt
	noted    map[string]bool
}

func newStmtCache(db *sql.DB, deferred bool) *stmtCache {
	return &stmtCache{db: db, deferred: deferred, m: make(map[string]*sql.Stmt), noted: make(map[string]bool)}
}

// get returns query prepared on the pool, or nil: the caller then runs it
// unprepared (which also reports a query that cannot be prepared).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	st := c.m[query]
	c.mu.RUnlock()
	if st != nil {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st = c.m[query]; st != nil {
		return st
	}
	if c.deferred {
		if _, seen := c.noted[query]; !seen {
			c.noted[query] = true
		}
		return nil
	}
	c.prepare(ctx, query)
	return c.m[query]
}

// prepare is called with mu held.
func (c *stmtCache) prepare(ctx context.Context, query string) {
	if st, err := c.db.PrepareContext(context.WithoutCancel(ctx), query); err == nil {
		c.m[query] = st
	}
}

// prepareNoted prepares the queries get has noted; the caller holds no
// transaction on the pool. A query that does not prepare is not noted
// again.
func (c *stmtCache) prepareNoted(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, want := range c.noted {
		if want {
			c.prepare(ctx, q)
			c.noted[q] = false
		}
	}
}

// hasNoted is a cheap check for the committer's loop.
func (c *stmtCache) hasNoted() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, want := range c.noted {
		if want {
			return true
		}
	}
	return false
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// txExec is tx.ExecContext with query prepared once on the writer, where
// every transaction runs.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := s.ws.get(ctx, query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txQueryRow is tx.QueryRowContext with query prepared once on the writer.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st := s.ws.get(ctx, query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// readRow is a read on the readers' pool with query prepared once.
func (s *Store) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.rs.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, query, args...)
}
