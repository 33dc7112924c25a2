package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

func (s *Store) Failures(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	key = text(key)
	var start int64
	var n int
	err := s.pool.QueryRow(ctx, `SELECT window_start, failures FROM throttle WHERE key = $1`, key).Scan(&start, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, s.wrap("reading a throttle", err)
	}
	end := time.Unix(0, start).Add(window)
	if !now.Before(end) {
		return 0, time.Time{}, nil
	}
	return n, end, nil
}

// AddFailure is one upsert; concurrent ones on a key queue on its row lock
// and each sees the count before it.
func (s *Store) AddFailure(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	key = text(key)
	var start int64
	var n int
	err := s.pool.QueryRow(ctx, `INSERT INTO throttle AS t (key, window_start, failures) VALUES ($1, $2, 1)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN t.window_start + $3 <= $2 THEN 1 ELSE t.failures + 1 END,
			window_start = CASE WHEN t.window_start + $3 <= $2 THEN $2 ELSE t.window_start END
		RETURNING window_start, failures`, key, now.UnixNano(), int64(window)).Scan(&start, &n)
	if err != nil {
		return 0, time.Time{}, s.wrap("counting a failure", err)
	}
	return n, time.Unix(0, start).Add(window), nil
}

func (s *Store) PruneThrottles(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM throttle WHERE window_start < $1`, before.UnixNano())
	if err != nil {
		return 0, s.wrap("pruning throttles", err)
	}
	return int(tag.RowsAffected()), nil
}
