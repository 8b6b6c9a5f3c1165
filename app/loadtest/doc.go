// Package loadtest is `shopdesk bench`: it creates a throw-away shop on a running node or cluster,
// drives buyers and agents over real WebSockets and checks what the server promises. Its invariants:
// every acked message reaches the other side's device exactly once and, per device and conversation,
// in increasing seq order; and it only ever dials loopback addresses, so a bench cannot load a
// machine other than the one it runs on.
package loadtest
