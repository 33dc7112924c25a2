package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

func (s *Store) Failures(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	var start int64
	var n int
	err := s.readRow(ctx, `SELECT window_start, failures FROM throttle WHERE key = ?`, key).Scan(&start, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("reading throttle %q: %w", key, err)
	}
	end := time.Unix(0, start).Add(window)
	if !now.Before(end) {
		return 0, time.Time{}, nil
	}
	return n, end, nil
}

// AddFailure is one upsert: a window that has ended starts again at now.
func (s *Store) AddFailure(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	var start int64
	var n int
	err := s.w.QueryRowContext(ctx, `INSERT INTO throttle (key, window_start, failures) VALUES (?1, ?2, 1)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN window_start + ?3 <= ?2 THEN 1 ELSE failures + 1 END,
			window_start = CASE WHEN window_start + ?3 <= ?2 THEN ?2 ELSE window_start END
		RETURNING window_start, failures`, key, now.UnixNano(), int64(window)).Scan(&start, &n)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("counting a failure of %q: %w", key, err)
	}
	return n, time.Unix(0, start).Add(window), nil
}

func (s *Store) PruneThrottles(ctx context.Context, before time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM throttle WHERE window_start < ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("pruning throttles: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
