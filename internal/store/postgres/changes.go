package postgres

import (
	"context"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

var _ store.ChangeWaiter = (*Store)(nil)

func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	return listRows(ctx, s.pool, "changes", `SELECT id, kind, subject, at FROM changes WHERE id > $1 ORDER BY id LIMIT $2`,
		[]any{after, limit}, func(row scanner, c *store.Change) error {
			var at *int64
			if err := row.Scan(&c.Seq, &c.Kind, &c.Subject, &at); err != nil {
				return err
			}
			c.At = fromNanos(at)
			return nil
		})
}

func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, s.wrap("reading the latest change", err)
	}
	return seq, nil
}

func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM changes WHERE at < $1`, before.UnixNano())
	if err != nil {
		return 0, s.wrap("pruning changes", err)
	}
	return int(tag.RowsAffected()), nil
}

// WaitChange LISTENs on its own connection, taken from the pool on first
// use and kept: notifications that arrive between two calls are buffered
// on it. Any error gives the connection back (closed), and the caller polls
// until the next call listens again.
func (s *Store) WaitChange(ctx context.Context) error {
	// Close ends a wait, so that it can take the connection back.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.listener == nil {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return s.wrap("listening for changes", err)
		}
		if _, err := conn.Exec(ctx, `LISTEN latchkey_changes`); err != nil {
			conn.Release()
			return s.wrap("listening for changes", err)
		}
		s.listener = conn
	}
	if _, err := s.listener.Conn().WaitForNotification(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.dropListener()
		return s.wrap("waiting for changes", err)
	}
	return nil
}

// dropListener closes the listening connection rather than return it to
// the pool still subscribed.
func (s *Store) dropListener() {
	if s.listener != nil {
		c := s.listener
		s.listener = nil
		c.Conn().Close(context.Background())
		c.Release()
	}
}
