package throttle

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(3, time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("1.2.3.4", t0); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		l.Fail("1.2.3.4", t0.Add(time.Duration(i)*time.Second))
	}
	ok, wait := l.Allow("1.2.3.4", t0.Add(10*time.Second))
	if ok || wait != 50*time.Second {
		t.Fatalf("after 3 failures: ok=%v wait=%v, want refused for 50s", ok, wait)
	}
	if ok, _ := l.Allow("5.6.7.8", t0); !ok {
		t.Error("another key is limited")
	}
	if ok, _ := l.Allow("1.2.3.4", t0.Add(time.Minute)); !ok {
		t.Error("still limited after the window")
	}
	l.Fail("1.2.3.4", t0.Add(time.Minute))
	if ok, _ := l.Allow("1.2.3.4", t0.Add(time.Minute+time.Second)); !ok {
		t.Error("a new window starts counting from zero")
	}
}

func TestDisabled(t *testing.T) {
	l := New(0, time.Minute)
	for i := 0; i < 100; i++ {
		l.Fail("k", time.Now())
	}
	if ok, _ := l.Allow("k", time.Now()); !ok {
		t.Error("a limit of 0 should disable the limiter")
	}
}

func TestBounded(t *testing.T) {
	l := New(1, time.Hour)
	now := time.Now()
	for i := 0; i < maxKeys+10; i++ {
		l.Fail(fmt.Sprint(i), now)
	}
	if len(l.keys) > maxKeys {
		t.Errorf("%d keys kept, bound is %d", len(l.keys), maxKeys)
	}
}
