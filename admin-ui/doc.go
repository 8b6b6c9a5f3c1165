// Package adminui will embed the built web front end: the agent workspace, the manager screens and the
// buyer widget (issue "Admin UI"). Nothing is embedded yet; the API and WebSocket protocol in
// docs/protocol.md are what a front end speaks.
package adminui
