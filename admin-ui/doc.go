// Package adminui embeds the built web front end: the agent workspace and manager screens (a Vite +
// Vue 3 app under /app/), the demo store (/ and /store/) and the buyer widget (/widget.js). The
// sources live in web/ (an npm project with its own go.mod, so `go ... ./...` never walks into
// node_modules); the build writes dist/, which holds only a committed placeholder until it runs.
// The front end speaks only the API and WebSocket protocol of docs/protocol.md.
package adminui
