package routing

import (
	"context"
	"strconv"
	"sync"
)

// Slots is the capacity ledger of every shop: which session holds how many capacity units of which
// agent. The engine is its only writer. Every change is one atomic step and is appended to the shop's
// claim log, so that ReplayClaims can prove afterwards that no claim ever exceeded a capacity.
//
// A session holds at most one slot. Claiming it at another agent moves it: the old units are released
// in the same atomic step, and only when the new claim fits, so a transfer never leaves the session
// with two slots or with none.
type Slots interface {
	// Claim takes units of agentID's capacity for sessionID unless that would bring the agent's load
	// above capacity; ok reports whether it did. Claiming a session the agent already holds changes
	// nothing and succeeds (the units are counted once); claiming a session another agent holds moves
	// it (see the type's comment).
	Claim(ctx context.Context, shopID, agentID, sessionID int64, units, capacity int) (ok bool, err error)
	// ForceClaim is a manager's assignment: it takes the units whatever the agent's load, logs the
	// claim as forced, and reports whether the agent is now above capacity.
	ForceClaim(ctx context.Context, shopID, agentID, sessionID int64, units, capacity int) (over bool, err error)
	// Release gives back the session's units and returns the slot released. agentID 0 releases them
	// whoever holds them; otherwise only when agentID does. Releasing a session that holds nothing
	// changes nothing and reports released false.
	Release(ctx context.Context, shopID, agentID, sessionID int64) (slot Holding, released bool, err error)
	// Load returns the units each of agentIDs holds, or with agentIDs nil every agent of the shop that
	// holds some; agents holding nothing are absent from the map.
	Load(ctx context.Context, shopID int64, agentIDs []int64) (map[int64]int, error)
	// Held reports which agent holds the session's slot, if any.
	Held(ctx context.Context, shopID, sessionID int64) (Holding, bool, error)
	// Holdings returns every slot of the shop by session, for the engine's periodic sweep of slots a
	// crash left behind.
	Holdings(ctx context.Context, shopID int64) (map[int64]Holding, error)
	// ClaimLog returns the shop's claim log, oldest first (at most the implementation's bound).
	ClaimLog(ctx context.Context, shopID int64) ([]ClaimEvent, error)
}

// Holding is the slot a session holds.
type Holding struct {
	AgentID int64 `json:"agent_id"`
	Units   int   `json:"units"`
	Forced  bool  `json:"forced,omitempty"`
}

// Claim-log operations.
const (
	OpClaim   = "claim"
	OpForce   = "force"
	OpRelease = "release"
)

// ClaimEvent is one entry of a claim log.
type ClaimEvent struct {
	// ID orders the log: a Redis stream id, or a counter in process.
	ID string `json:"id"`
	// Op is OpClaim, OpForce or OpRelease (a move logs a release then a claim).
	Op        string `json:"op"`
	AgentID   int64  `json:"agent_id"`
	SessionID int64  `json:"session_id"`
	Units     int    `json:"units"`
	// Capacity is the capacity the claim was checked against (0 on releases).
	Capacity int `json:"capacity"`
	// Load is the agent's load right after the event.
	Load int `json:"load"`
}

// DefaultClaimLogMax bounds a shop's claim log; older entries are dropped (roughly, in Redis).
const DefaultClaimLogMax = 100_000

// Replay is what replaying a claim log found.
type Replay struct {
	Events   int `json:"events"`
	Claims   int `json:"claims"`
	Forced   int `json:"forced"`
	Releases int `json:"releases"`
	// OverCapacity counts ordinary claims after which the agent's replayed load exceeded the capacity
	// the claim was checked against. It must be 0.
	OverCapacity int `json:"over_capacity"`
	// ForcedOver counts forced claims that left the agent above capacity, which managers may do.
	ForcedOver int `json:"forced_over"`
	// Mismatches counts events whose recorded load differs from the replayed one: a log whose start
	// was trimmed, or a bug.
	Mismatches int `json:"mismatches"`
	// MaxLoad is the highest load any agent reached.
	MaxLoad int `json:"max_load"`
}

// ReplayClaims replays a complete claim log from empty slots and checks every claim against its
// capacity.
func ReplayClaims(events []ClaimEvent) Replay {
	var r Replay
	load := map[int64]int{}
	for _, ev := range events {
		r.Events++
		switch ev.Op {
		case OpClaim, OpForce:
			load[ev.AgentID] += ev.Units
			if ev.Op == OpClaim {
				r.Claims++
				if load[ev.AgentID] > ev.Capacity {
					r.OverCapacity++
				}
			} else {
				r.Forced++
				if load[ev.AgentID] > ev.Capacity {
					r.ForcedOver++
				}
			}
		case OpRelease:
			r.Releases++
			load[ev.AgentID] -= ev.Units
		}
		if load[ev.AgentID] != ev.Load {
			r.Mismatches++
		}
		r.MaxLoad = max(r.MaxLoad, load[ev.AgentID])
	}
	return r
}

// MemorySlots keeps slots in process: the embedded mode and single-node deployments.
type MemorySlots struct {
	// LogMax bounds each shop's claim log (DefaultClaimLogMax when 0; unbounded when negative).
	LogMax int

	mu    sync.Mutex
	shops map[int64]*memSlots
}

type memSlots struct {
	load map[int64]int
	held map[int64]Holding
	log  []ClaimEvent
	seq  int64
}

// NewMemorySlots returns empty in-process slots.
func NewMemorySlots() *MemorySlots { return &MemorySlots{shops: map[int64]*memSlots{}} }

func (m *MemorySlots) shop(id int64) *memSlots {
	s := m.shops[id]
	if s == nil {
		s = &memSlots{load: map[int64]int{}, held: map[int64]Holding{}}
		m.shops[id] = s
	}
	return s
}

func (m *MemorySlots) logMax() int {
	if m.LogMax == 0 {
		return DefaultClaimLogMax
	}
	return m.LogMax
}

func (s *memSlots) append(limit int, ev ClaimEvent) {
	s.seq++
	ev.ID = strconv.FormatInt(s.seq, 10)
	s.log = append(s.log, ev)
	if limit > 0 && len(s.log) > limit {
		s.log = append(s.log[:0:0], s.log[len(s.log)-limit:]...)
	}
}

func (m *MemorySlots) claim(shopID, agentID, sessionID int64, units, capacity int, force bool) (bool, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.shop(shopID)
	h, held := s.held[sessionID]
	if held && h.AgentID == agentID {
		return true, s.load[agentID]
	}
	if !force && s.load[agentID]+units > capacity {
		return false, s.load[agentID]
	}
	if held {
		s.sub(h.AgentID, h.Units)
		s.append(m.logMax(), ClaimEvent{Op: OpRelease, AgentID: h.AgentID, SessionID: sessionID, Units: h.Units, Load: s.load[h.AgentID]})
	}
	s.load[agentID] += units
	s.held[sessionID] = Holding{AgentID: agentID, Units: units, Forced: force}
	op := OpClaim
	if force {
		op = OpForce
	}
	s.append(m.logMax(), ClaimEvent{Op: op, AgentID: agentID, SessionID: sessionID, Units: units, Capacity: capacity, Load: s.load[agentID]})
	return true, s.load[agentID]
}

func (s *memSlots) sub(agentID int64, units int) {
	if s.load[agentID] -= units; s.load[agentID] <= 0 {
		delete(s.load, agentID)
	}
}

// Claim takes units of the agent's capacity for the session if they fit.
func (m *MemorySlots) Claim(_ context.Context, shopID, agentID, sessionID int64, units, capacity int) (bool, error) {
	ok, _ := m.claim(shopID, agentID, sessionID, units, capacity, false)
	return ok, nil
}

// ForceClaim takes the units whatever the load and reports whether the agent is above capacity.
func (m *MemorySlots) ForceClaim(_ context.Context, shopID, agentID, sessionID int64, units, capacity int) (bool, error) {
	_, load := m.claim(shopID, agentID, sessionID, units, capacity, true)
	return load > capacity, nil
}

// Release gives back the session's units.
func (m *MemorySlots) Release(_ context.Context, shopID, agentID, sessionID int64) (Holding, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.shop(shopID)
	h, held := s.held[sessionID]
	if !held || (agentID != 0 && h.AgentID != agentID) {
		return Holding{}, false, nil
	}
	s.sub(h.AgentID, h.Units)
	delete(s.held, sessionID)
	s.append(m.logMax(), ClaimEvent{Op: OpRelease, AgentID: h.AgentID, SessionID: sessionID, Units: h.Units, Load: s.load[h.AgentID]})
	return h, true, nil
}

// Load returns the units each agent holds.
func (m *MemorySlots) Load(_ context.Context, shopID int64, agentIDs []int64) (map[int64]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.shop(shopID)
	if agentIDs == nil {
		out := make(map[int64]int, len(s.load))
		for id, n := range s.load {
			out[id] = n
		}
		return out, nil
	}
	out := make(map[int64]int, len(agentIDs))
	for _, id := range agentIDs {
		if n := s.load[id]; n > 0 {
			out[id] = n
		}
	}
	return out, nil
}

// Held reports the session's slot.
func (m *MemorySlots) Held(_ context.Context, shopID, sessionID int64) (Holding, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.shop(shopID).held[sessionID]
	return h, ok, nil
}

// Holdings returns a copy of the shop's slots.
func (m *MemorySlots) Holdings(_ context.Context, shopID int64) (map[int64]Holding, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	held := m.shop(shopID).held
	out := make(map[int64]Holding, len(held))
	for k, v := range held {
		out[k] = v
	}
	return out, nil
}

// ClaimLog returns a copy of the shop's claim log.
func (m *MemorySlots) ClaimLog(_ context.Context, shopID int64) ([]ClaimEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ClaimEvent(nil), m.shop(shopID).log...), nil
}
