package audit

import (
	"hash/maphash"
	"sync"
)

// How the accepted requests of a session are audited (Options.Sessions).
const (
	// SessionsActivity records a session's activity rather than each of its
	// requests: its first request from each client (client IP and user
	// agent) becomes a record with reason ReasonNewClient; how recently the
	// session was used is its last-seen time, which the session keeps.
	SessionsActivity = "activity"
	// SessionsEveryRequest records every accepted session request.
	SessionsEveryRequest = "every_request"
)

// ReasonNewClient is the reason of the record of a session's first request
// from a client (client IP and user agent) that this gateway process has
// not recorded for the session yet: a new device, a new network, or the
// same ones after a restart or a reload.
const ReasonNewClient = "new_client"

// DefaultActivityMemory is how many (session, client) pairs a Writer
// remembers as recorded, per generation (see clientMemory).
const DefaultActivityMemory = 1 << 16

// memoryShards spreads the pairs over independently locked maps, so that
// concurrent requests rarely wait for one another.
const memoryShards = 16

// clientMemory remembers which (session, client IP, user agent) triples were
// recorded, so that the request hot path does not write. It is bounded: each
// shard keeps two generations of at most perShard keys; when the current one
// is full it becomes the old one and the oldest is forgotten, and a key found
// in the old generation moves to the current one. So a pair in use stays
// remembered, a pair not seen for a while is forgotten (and recorded again
// when it comes back), and memory stays near 2×capacity keys whatever
// clients do. Keys are 64-bit hashes under a per-process random seed: an
// attacker cannot make two pairs collide on purpose.
type clientMemory struct {
	seed     maphash.Seed
	perShard int
	shards   [memoryShards]memoryShard
}

type memoryShard struct {
	mu       sync.Mutex
	cur, old map[uint64]struct{}
	// Keeps neighbouring shards' locks off one cache line.
	_ [40]byte
}

func newClientMemory(capacity int) *clientMemory {
	if capacity <= 0 {
		capacity = DefaultActivityMemory
	}
	m := &clientMemory{seed: maphash.MakeSeed(), perShard: max(capacity/memoryShards, 1)}
	for i := range m.shards {
		m.shards[i].cur = make(map[uint64]struct{})
	}
	return m
}

// key is the pair's hash. The user agent is cut as the trail stores it.
func (m *clientMemory) key(session, ip, ua string) uint64 {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(session)
	h.WriteByte(0)
	h.WriteString(ip)
	h.WriteByte(0)
	h.WriteString(TruncateUA(ua))
	return h.Sum64()
}

func (m *clientMemory) shard(k uint64) *memoryShard { return &m.shards[k%memoryShards] }

// add remembers k and reports whether it is new.
func (m *clientMemory) add(k uint64) bool {
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cur[k]; ok {
		return false
	}
	_, known := s.old[k]
	if len(s.cur) >= m.perShard {
		s.old, s.cur = s.cur, make(map[uint64]struct{}, m.perShard)
	}
	s.cur[k] = struct{}{}
	return !known
}

// forget undoes add, for a record that could not be queued: the pair's next
// request tries again.
func (m *clientMemory) forget(k uint64) {
	s := m.shard(k)
	s.mu.Lock()
	delete(s.cur, k)
	delete(s.old, k)
	s.mu.Unlock()
}
