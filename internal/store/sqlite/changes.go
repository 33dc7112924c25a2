package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// ChangesSince reads from the read pool: following the fan-out never takes
// the write lock.
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = 1000
	}
	return listRows(ctx, s.r, "changes", `SELECT id, kind, subject, at FROM changes WHERE id > ? ORDER BY id LIMIT ?`,
		[]any{after, limit}, func(row interface{ Scan(...any) error }, c *store.Change) error {
			var at sql.NullInt64
			if err := row.Scan(&c.Seq, &c.Kind, &c.Subject, &at); err != nil {
				return err
			}
			c.At = fromNanos(at)
			return nil
		})
}

func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading the latest change: %w", err)
	}
	return seq, nil
}

func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM changes WHERE at < ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("pruning changes before %s: %w", before.Format(time.RFC3339), err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
