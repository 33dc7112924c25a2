package mail

import (
	"context"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

type noSend struct{}

func (noSend) SendMail(context.Context, *store.Mail) error { return nil }

// The worker counts the queued mails after a poll, at most every
// CountEvery; before its first count the depth is unknown.
func TestWorkerQueueDepth(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	w := NewWorker(st, noSend{}, WorkerOptions{Poll: 5 * time.Millisecond, CountEvery: 10 * time.Millisecond})
	if _, ok := w.QueueDepth(); ok {
		t.Fatal("depth known before the worker counted")
	}
	// Two mails queued for a retry an hour from now: not due, so they stay.
	for _, to := range []string{"a@example.com", "b@example.com"} {
		m := &store.Mail{Kind: store.MailKindInvite, To: to, Subject: "s", Text: "t", CreatedAt: now, NextAttemptAt: now.Add(time.Hour)}
		if err := st.EnqueueMail(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); w.Wait() }()
	w.Start(ctx)
	waitFor(t, "the worker to count two queued mails", func() bool {
		n, ok := w.QueueDepth()
		return ok && n == 2
	})
	// A due mail is sent, and the next count sees the two left.
	if err := w.Enqueue(t.Context(), &store.Mail{Kind: store.MailKindInvite, To: "c@example.com", Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sent mail to leave the count", func() bool {
		ms, err := st.Mails(t.Context(), store.MailFilter{State: store.MailSent})
		n, ok := w.QueueDepth()
		return err == nil && len(ms) == 1 && ok && n == 2
	})
}
