package throttle

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A burst of concurrent attempts is cut at the limit before any of them is
// checked; released attempts (right credentials) cost nothing.
func TestReserveHoldsTheLimitForAttemptsInFlight(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(10, time.Minute)
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 70 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, _ := l.Reserve("192.0.2.1", now); ok {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 10 {
		t.Fatalf("admitted %d of a burst of 70, want exactly 10", n)
	}
	if _, ok, wait := l.Reserve("192.0.2.1", now.Add(30*time.Second)); ok || wait != 30*time.Second {
		t.Errorf("11th attempt: ok=%v wait=%v; want refused for 30s", ok, wait)
	}
	if _, ok, _ := l.Reserve("192.0.2.2", now); !ok {
		t.Error("another key is refused")
	}
	if _, ok, _ := l.Reserve("192.0.2.1", now.Add(time.Minute)); !ok {
		t.Error("refused after the window")
	}
}

func TestReleaseGivesTheAttemptBack(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(2, time.Minute)
	for i := range 100 {
		r, ok, _ := l.Reserve("k", now)
		if !ok {
			t.Fatalf("attempt %d refused although every earlier one was released", i)
		}
		r.Release()
	}
	r1, _, _ := l.Reserve("k", now)
	r2, _, _ := l.Reserve("k", now)
	if _, ok, _ := l.Reserve("k", now); ok {
		t.Fatal("third attempt admitted with two held")
	}
	r1.Release()
	if _, ok, _ := l.Reserve("k", now); !ok {
		t.Fatal("refused after a release")
	}
	_ = r2
	// A release after the window does not eat into the next window.
	old, _, _ := l.Reserve("w", now)
	l.Reserve("w", now.Add(time.Minute))
	l.Reserve("w", now.Add(time.Minute))
	old.Release()
	if _, ok, _ := l.Reserve("w", now.Add(time.Minute)); ok {
		t.Error("a release from an old window freed an attempt in the new one")
	}
	var off *Limiter
	if _, ok, _ := off.Reserve("k", now); !ok {
		t.Error("nil limiter refuses")
	}
	if _, ok, _ := New(0, time.Minute).Reserve("k", now); !ok {
		t.Error("disabled limiter refuses")
	}
}
