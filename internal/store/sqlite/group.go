package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// maxGroup bounds how many callers one transaction carries, which bounds
// how long the last of them waits for the first.
const maxGroup = 128

// errClosed is returned to callers that arrive after Close.
var errClosed = errors.New("store is closed")

// committer runs the write transactions of concurrent callers together
// (group commit): whoever is waiting when the writer comes free goes into
// one BEGIN IMMEDIATE … COMMIT, each caller in its own SAVEPOINT so that one
// caller's failure undoes only its own writes, and each gets its own
// result. A lone caller gets a transaction of its own at once: nobody waits
// for others to arrive, only for the transaction already running.
//
// Statements run with a context that cannot be cancelled: SQLite rolls a
// whole transaction back when a statement in it is interrupted, which would
// undo the other callers' writes. A caller whose context is done before its
// turn is skipped.
type committer struct {
	db *sql.DB
	// stmts are the writer's prepared statements: the connection is free
	// for preparing only between the loop's transactions.
	stmts *stmtCache
	queue chan *groupJob
	stop  chan struct{}
	done  sync.WaitGroup
	once  sync.Once
	// mu is held shared while a job is queued and exclusively by close,
	// so that no job is queued after the loop has drained the queue.
	mu     sync.RWMutex
	closed bool
}

type groupJob struct {
	ctx    context.Context
	f      func(ctx context.Context, tx *sql.Tx) error
	result chan error
}

func newCommitter(db *sql.DB) *committer {
	c := &committer{db: db, stmts: newStmtCache(db, true), queue: make(chan *groupJob, maxGroup), stop: make(chan struct{})}
	c.done.Add(1)
	go c.loop()
	return c
}

// do runs f in a group transaction and returns its result once the group
// has committed (or f's own error, with its writes undone).
func (c *committer) do(ctx context.Context, f func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &groupJob{ctx: ctx, f: f, result: make(chan error, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	select {
	case c.queue <- j:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, wait for the answer even if ctx ends: the writes may
	// already be committed, and the caller must not report otherwise.
	return <-j.result
}

func (c *committer) close() {
	c.once.Do(func() {
		// Senders blocked on a full queue hold mu shared; the loop keeps
		// taking jobs until stop, so they get through first.
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
		c.done.Wait()
		c.stmts.close()
	})
}

func (c *committer) loop() {
	defer c.done.Done()
	batch := make([]*groupJob, 0, maxGroup)
	for {
		var first *groupJob
		select {
		case first = <-c.queue:
		case <-c.stop:
			// Answer whoever is still queued.
			for {
				select {
				case j := <-c.queue:
					j.result <- errClosed
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxGroup {
			select {
			case j := <-c.queue:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		c.run(batch)
		clear(batch)
		if c.stmts.hasNoted() {
			c.stmts.prepareNoted(context.Background())
		}
	}
}

func (c *committer) run(batch []*groupJob) {
	ctx := context.Background()
	results := make([]error, len(batch))
	finish := func(err error) {
		for i, j := range batch {
			if results[i] == nil {
				results[i] = err
			}
			j.result <- results[i]
		}
	}
	exec := func(ctx context.Context, tx *sql.Tx, query string) error {
		if st := c.stmts.get(ctx, query); st != nil {
			_, err := tx.StmtContext(ctx, st).ExecContext(ctx)
			return err
		}
		_, err := tx.ExecContext(ctx, query)
		return err
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		finish(fmt.Errorf("beginning transaction: %w", err))
		return
	}
	if len(batch) == 1 {
		j := batch[0]
		if err := j.ctx.Err(); err != nil {
			tx.Rollback()
			finish(err)
			return
		}
		if err := j.f(context.WithoutCancel(j.ctx), tx); err != nil {
			tx.Rollback()
			finish(err)
			return
		}
	} else {
		for i, j := range batch {
			if err := j.ctx.Err(); err != nil {
				results[i] = err
				continue
			}
			jctx := context.WithoutCancel(j.ctx)
			if err := exec(jctx, tx, `SAVEPOINT g`); err != nil {
				tx.Rollback()
				finish(fmt.Errorf("savepoint: %w", err))
				return
			}
			if err := j.f(jctx, tx); err != nil {
				results[i] = err
				if rerr := exec(jctx, tx, `ROLLBACK TO g`); rerr != nil {
					// The group's state is unknown: nobody's writes count.
					tx.Rollback()
					finish(fmt.Errorf("undoing a failed write: %w", rerr))
					return
				}
			}
			if err := exec(jctx, tx, `RELEASE g`); err != nil {
				tx.Rollback()
				finish(fmt.Errorf("releasing savepoint: %w", err))
				return
			}
		}
	}
	if err := tx.Commit(); err != nil {
		// Every write of the group is undone, so even a caller whose own
		// part failed sees the commit's error only if it had none.
		for i := range results {
			if results[i] == nil {
				results[i] = fmt.Errorf("committing: %w", err)
			}
		}
	}
	finish(nil)
}
