// Package routing is the shunting engine (消息分流): it picks an agent for each service session by the
// shop's compiled rules (package rules), claims the agent's capacity atomically, keeps the waiting
// queue with positions and ETAs, escalates and re-routes (no answer, agent offline), transfers, and
// runs simulations and shadow runs of draft rule sets against live agents, explaining every decision
// in a Trace.
//
// It owns three kinds of state: capacity slots (Slots: in process or Redis, the only writer of them),
// the waiting queue (Queue: in process or Redis), and in SQL the rule-set versions, drafts, the
// active-version pointer with its audit log, schedules, explain traces and shadow results (Store).
//
// Invariants, whatever a rule says: an agent of another shop is never chosen; an agent whose status is
// not online (offline, busy, away) is never given a session by the engine; an agent never holds more
// capacity units than its capacity, across any number of nodes, because every claim is one atomic step
// in Slots that checks it — only a manager's ForceClaim may exceed it, and the claim log records it as
// forced. A rule failing at run time for a session is skipped and reported, never a crash. The Engine
// is the session.Router: opens, closes, transfers and re-assignments pass through it, so slots are
// released and queues drain; a periodic reconcile (Tick) rebuilds queues and sweeps slots a crash left.
//
// A node decides from caches: the shop's staff and rules (Config.CacheTTL, dropped at once by
// AgentChanged, AgentStatusChanged and RulesChanged on that node) and the loads (Config.LoadCacheTTL,
// exact for the node's own claims). Caches only order candidates; capacities are checked in Slots.
// Routing memory — last assignment times, shares, round-robin pointers, ETA windows, no-answer
// exclusions, offline-since times — is per node.
package routing
