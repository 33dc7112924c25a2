package audit

import (
	"fmt"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/internal/store"
)

func linkUse(jti, ip, ua string, status int, at time.Duration) store.AuditEvent {
	return store.AuditEvent{
		Time: t0.Add(at), Kind: "link", CredentialID: jti, UserID: 7, Outcome: store.OutcomeAccepted, Reason: "request",
		Method: "GET", Host: "news.example", Path: "/unsubscribe", Status: status, ClientIP: ip, UserAgent: ua,
		CountsLinkUse: true,
	}
}

// useCounts sums the uses the records of link jti stand for.
func useCounts(evs []store.AuditEvent, jti string) (rows int, uses int64) {
	for _, e := range evs {
		if e.CountsLinkUse && e.CredentialID == jti {
			rows++
			uses += max(e.Count, 1)
		}
	}
	return rows, uses
}

// TestWriterAggregatesLinkUses: the uses of one unlimited link by one
// client with one upstream status within the window are one record whose
// Count is every use; another client, user agent, status or link is a
// record of its own, and a use outside the window starts a new one.
func TestWriterAggregatesLinkUses(t *testing.T) {
	w, sink := newTestWriter(Options{})
	for i := range 50 {
		w.Record(linkUse("L1", "198.51.100.1", uaCurl, 200, time.Duration(i)*time.Millisecond))
	}
	w.Record(linkUse("L1", "198.51.100.2", uaCurl, 200, 0))        // another client
	w.Record(linkUse("L1", "198.51.100.1", "Mozilla/5.0", 200, 0)) // another user agent
	w.Record(linkUse("L1", "198.51.100.1", uaCurl, 502, 0))        // another status
	w.Record(linkUse("L2", "198.51.100.1", uaCurl, 200, 0))        // another link
	w.Record(linkUse("L1", "198.51.100.1", uaCurl, 200, 3*time.Second))
	closeWriter(t, w)
	evs := sink.events()
	if rows, uses := useCounts(evs, "L1"); rows != 5 || uses != 54 {
		t.Errorf("link L1: %d records for %d uses, want 5 for 54", rows, uses)
	}
	if rows, uses := useCounts(evs, "L2"); rows != 1 || uses != 1 {
		t.Errorf("link L2: %d records for %d uses, want 1 for 1", rows, uses)
	}
	for _, e := range evs {
		if e.CredentialID == "L1" && e.Count == 50 && (e.Status != 200 || e.ClientIP != "198.51.100.1" || e.UABrowser == "") {
			t.Errorf("aggregated record %+v", e)
		}
	}
}

// TestWriterNeverDropsLinkUses: with the queue and the overflow full and the
// store stuck, a use of an unlimited link waits for room rather than being
// dropped, and every use is counted once the store is back.
func TestWriterNeverDropsLinkUses(t *testing.T) {
	w, sink := stall(t, Options{QueueSize: 2, EnqueueTimeout: time.Millisecond, OverflowSize: 2})
	// Fill the overflow with two distinct link uses.
	w.Record(linkUse("A", "192.0.2.1", uaCurl, 200, 0))
	w.Record(linkUse("B", "192.0.2.1", uaCurl, 200, 0))
	const n = 20
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			w.Record(linkUse(fmt.Sprintf("C%d", i), "192.0.2.1", uaCurl, 200, 0))
		}
	}()
	select {
	case <-done:
		t.Fatal("uses of links with no room anywhere were dropped instead of waiting")
	case <-time.After(50 * time.Millisecond):
	}
	close(sink.hold)
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("link uses still waiting after the store came back")
	}
	closeWriter(t, w)
	if w.Dropped() != 0 {
		t.Errorf("%d events dropped", w.Dropped())
	}
	evs := sink.events()
	total := int64(0)
	for _, jti := range []string{"A", "B"} {
		_, u := useCounts(evs, jti)
		total += u
	}
	for i := range n {
		_, u := useCounts(evs, fmt.Sprintf("C%d", i))
		total += u
	}
	if total != n+2 {
		t.Errorf("%d uses recorded, want %d", total, n+2)
	}
}
