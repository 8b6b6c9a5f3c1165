package routing

import (
	"time"

	"github.com/shopdesk/shopdesk/rules"
)

// Trace explains one routing decision: which rule of which version took the session, how many agents
// each filter removed and why, the best candidates with their sort keys, the tie-break, and the
// outcome. Live decisions are written to the store in batches, off the hot path; Simulate returns
// them with every agent's verdict (Agents).
type Trace struct {
	ShopID    int64     `json:"shop_id"`
	SessionID int64     `json:"session_id"`
	At        time.Time `json:"at"`
	// Cause is what asked for the decision: one of the Cause* constants.
	Cause string `json:"cause"`
	// Version is the rule-set version used: 0 for the built-in default, VersionDraft for a draft or an
	// unsaved rule set.
	Version int `json:"version"`
	// Rule is the index of the rule that took the session (rules.DefaultRule for the default) and
	// RuleName its name; Escalations counts the escalations that led to it.
	Rule        int    `json:"rule"`
	RuleName    string `json:"rule_name"`
	Escalations int    `json:"escalations,omitempty"`
	// Weight is the capacity units the session takes.
	Weight int                `json:"weight"`
	Prefer []rules.Preference `json:"prefer,omitempty"`
	// Staff is how many staff members of the shop were considered; Filters how many each filter
	// removed, in the order they ran; Eligible how many were left.
	Staff    int           `json:"staff"`
	Filters  []FilterCount `json:"filters,omitempty"`
	Eligible int           `json:"eligible"`
	// Top are the first (at most 5) eligible agents in preference order.
	Top []CandidateTrace `json:"top,omitempty"`
	// TieBreak says how the first place was decided when the preferences tied.
	TieBreak string `json:"tie_break,omitempty"`
	// Raced lists agents whose claim failed because another decision took their last units first.
	Raced []int64 `json:"raced,omitempty"`
	// Errors are run-time errors of the rules (when, weight, target, score), at most 5; ErrorCount
	// counts all of them.
	Errors     []string `json:"errors,omitempty"`
	ErrorCount int      `json:"error_count,omitempty"`
	// Outcome is one of the Outcome* constants; AgentID the agent chosen (0 when none).
	Outcome string `json:"outcome"`
	AgentID int64  `json:"agent_id,omitempty"`
	// Over reports a forced claim that left the agent above capacity.
	Over bool `json:"over,omitempty"`
	// Note is the transfer note or the manual assignment's author.
	Note string `json:"note,omitempty"`
	// Agents is every agent's verdict; only Simulate fills it.
	Agents []AgentTrace `json:"agents,omitempty"`
}

// Causes of a routing decision.
const (
	CauseOpened   = "opened"
	CauseQueue    = "queue"
	CauseEscalate = "escalate"
	CauseNoAnswer = "noanswer"
	CauseReroute  = "reroute"
	CauseTransfer = "transfer"
	CauseManual   = "manual"
	CauseSimulate = "simulate"
)

// Outcomes of a routing decision.
const (
	// OutcomeAssigned: an agent was claimed and the session assigned to them.
	OutcomeAssigned = "assigned"
	// OutcomeQueued: no eligible agent had room; the session waits in the queue.
	OutcomeQueued = "queued"
	// OutcomeKept: a re-assignment found no one else; the session stays with its agent.
	OutcomeKept = "kept"
	// OutcomeChosen: a simulation or shadow run chose an agent (nothing was claimed).
	OutcomeChosen = "chosen"
	// OutcomeNone: a simulation or shadow run found no eligible agent; a transfer failed.
	OutcomeNone = "none"
	// OutcomeClosed: the session closed while it was being routed.
	OutcomeClosed = "closed"
)

// VersionDraft is Trace.Version for a draft or unsaved rule set.
const VersionDraft = -1

// Filters, in the order the engine applies them. The status filters run on a per-shop snapshot, before
// any expression; "not in group" is a target of the form `"g" in agent.groups`, answered by an index
// of the shop's agents by group instead of evaluating it.
const (
	FilterOtherShop    = "other shop"
	FilterInactive     = "inactive"
	FilterOffline      = "offline"
	FilterBusy         = "busy"
	FilterAway         = "away"
	FilterNoHeartbeat  = "no heartbeat"
	FilterNoCapacity   = "no capacity"
	FilterNotInGroup   = "not in group"
	FilterFull         = "full"
	FilterExcluded     = "excluded"
	FilterTargetFalse  = "target false"
	FilterRuntimeError = "runtime error"
)

// filterOrder lists the filters in trace order.
var filterOrder = []string{FilterOtherShop, FilterInactive, FilterOffline, FilterBusy, FilterAway,
	FilterNoHeartbeat, FilterNoCapacity, FilterNotInGroup, FilterFull, FilterExcluded, FilterTargetFalse, FilterRuntimeError}

type filterID int

const (
	fOtherShop filterID = iota
	fInactive
	fOffline
	fBusy
	fAway
	fNoHeartbeat
	fNoCapacity
	fNotInGroup
	fFull
	fExcluded
	fTargetFalse
	fRuntimeError
	nFilters
)

// FilterCount is how many agents one filter removed.
type FilterCount struct {
	Filter  string `json:"filter"`
	Removed int    `json:"removed"`
}

// CandidateTrace is one eligible agent with its sort keys (one per preference of the rule, lower
// first: load ratio, minus idle seconds, round-robin distance, 0 for the last agent else 1, share,
// minus score).
type CandidateTrace struct {
	AgentID  int64     `json:"agent_id"`
	Load     int       `json:"load"`
	Capacity int       `json:"capacity"`
	Keys     []float64 `json:"keys"`
}

// AgentTrace is one agent's verdict in a simulation.
type AgentTrace struct {
	AgentID  int64    `json:"agent_id"`
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	Load     int      `json:"load"`
	Capacity int      `json:"capacity"`
	Groups   []string `json:"groups"`
	// Removed is the filter that removed the agent, empty when eligible.
	Removed string `json:"removed,omitempty"`
	// Error is the run-time error of the target or score, if any.
	Error string    `json:"error,omitempty"`
	Keys  []float64 `json:"keys,omitempty"`
	// Rank is the agent's 1-based place among the eligible, 0 when removed.
	Rank int `json:"rank,omitempty"`
}

// ShadowResult compares one live decision with what the shop's shadow draft would have decided.
type ShadowResult struct {
	ID          int64     `json:"id"`
	ShopID      int64     `json:"shop_id"`
	SessionID   int64     `json:"session_id"`
	At          time.Time `json:"at"`
	LiveVersion int       `json:"live_version"`
	LiveRule    string    `json:"live_rule"`
	// LiveAgent is the agent the live rules assigned, 0 when the session was queued.
	LiveAgent  int64  `json:"live_agent"`
	ShadowRule string `json:"shadow_rule"`
	// ShadowAgent is the agent the draft would have chosen, 0 when it would have queued.
	ShadowAgent int64 `json:"shadow_agent"`
	Differs     bool  `json:"differs"`
}
