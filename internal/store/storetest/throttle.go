package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

// testThrottles checks the failure counts gateways share: one window a
// key, a new one once it ends, and concurrent failures each counted.
func testThrottles(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := time.Minute
	if n, _, err := s.Failures(ctx, "ip:192.0.2.1", w, at(0)); err != nil || n != 0 {
		t.Fatalf("Failures of an unknown key = %d, %v", n, err)
	}
	for i := 1; i <= 3; i++ {
		n, end, err := s.AddFailure(ctx, "ip:192.0.2.1", w, at(time.Duration(i)*time.Second))
		if err != nil || n != i || !end.Equal(at(time.Second+w)) {
			t.Fatalf("AddFailure %d = %d, %v, %v; want %d ending %v", i, n, end, err, i, at(time.Second+w))
		}
	}
	if n, end, err := s.Failures(ctx, "ip:192.0.2.1", w, at(30*time.Second)); err != nil || n != 3 || !end.Equal(at(time.Second+w)) {
		t.Errorf("Failures in the window = %d, %v, %v", n, end, err)
	}
	if n, _, _ := s.Failures(ctx, "ip:192.0.2.1", w, at(time.Second+w)); n != 0 {
		t.Errorf("Failures after the window = %d, want 0", n)
	}
	if n, end, err := s.AddFailure(ctx, "ip:192.0.2.1", w, at(2*time.Minute)); err != nil || n != 1 || !end.Equal(at(2*time.Minute+w)) {
		t.Errorf("AddFailure after the window = %d, %v, %v; want a new window", n, end, err)
	}
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.AddFailure(ctx, "uuid:burst", w, at(0)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, _, _ := s.Failures(ctx, "uuid:burst", w, at(time.Second)); n != 40 {
		t.Errorf("40 concurrent failures counted as %d", n)
	}
	if n, err := s.PruneThrottles(ctx, at(time.Minute)); err != nil || n != 1 {
		t.Errorf("PruneThrottles = %d, %v; want the burst's window", n, err)
	}
}
