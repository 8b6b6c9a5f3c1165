// Package loadtest is `shopdesk bench`: it creates a throw-away shop on a running node or cluster,
// drives buyers and agents over real WebSockets and checks what the server promises; the archive and
// search scenarios instead run the Store Scheduler's jobs and the search index in its own process,
// against a database, key prefix and index of their own that they remove. Its invariants:
// every acked message reaches the other side's device exactly once and, per device and conversation,
// in increasing seq order; and it only ever dials loopback addresses (nodes, MariaDB, Redis,
// Elasticsearch), so a bench cannot load a machine other than the one it runs on.
package loadtest
