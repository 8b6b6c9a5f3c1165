module shopdesk.invalid/adminui-web

// This go.mod only stops `go ... ./...` of the shopdesk module from walking into node_modules:
// some npm packages ship .go files. Nothing here is Go.
