# Shopdesk: `make run` starts a node with embedded defaults and a demo shop; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin/shopdesk
GOFILES = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*')

# The web front end (admin-ui/web, an npm project) builds into admin-ui/dist, which the binary
# embeds. It is rebuilt when a source is newer than the build; npm ci runs when the lock file changes.
UI := admin-ui/web
UI_SRC := $(shell find $(UI)/src $(UI)/app $(UI)/store $(UI)/scripts -type f 2>/dev/null) $(UI)/package.json $(UI)/vite.config.ts $(UI)/vite.widget.config.ts
UI_BUILT := admin-ui/dist/app/index.html
UI_DEPS := $(UI)/node_modules/.package-lock.json

.PHONY: run build ui test bench vet fmt clean

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/shopdesk

$(UI_DEPS): $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(UI_BUILT): $(UI_SRC) $(UI_DEPS)
	cd $(UI) && npm run --silent build

ui: $(UI_BUILT)

run: ui build
	./$(BIN) serve --demo

# test: formatting, vet, a cgo-free build (bin/shopdesk, with the front end embedded), every Go test
# with the race detector, then the front end's: Vitest component tests, the widget's size, and the
# browser end-to-end tests (Debian's Chromium against bin/shopdesk, embedded and MariaDB + Redis).
# Backend suites (MariaDB, Redis, Chromium) fail when CI=true and the server is missing, and are
# skipped and counted otherwise.
test: ui
	@unformatted="$$(gofmt -l $(GOFILES))"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/shopdesk
	@set -o pipefail; rm -f .test.log .ui-test.log; \
	$(GO) test -race -count=1 -timeout 20m -v ./... > .test.log 2>&1; rc=$$?; \
	grep -E '^(ok |FAIL|--- FAIL|panic:|\?)|^\s+[a-z_0-9]+_test\.go:[0-9]+: ' .test.log | grep -v 'BACKEND-SKIP' ; \
	passed=$$(grep -cE '^\s*--- PASS' .test.log); failed=$$(grep -cE '^\s*--- FAIL' .test.log); \
	if [ $$rc -ne 0 ] && [ $$failed -eq 0 ]; then failed=1; fi; \
	echo "go: $$passed passed, $$failed failed"; \
	(cd $(UI) && NO_COLOR=1 FORCE_COLOR=0 npx vitest run) > .ui-test.log 2>&1; vrc=$$?; \
	vline=$$(grep -E '^\s*Tests\s' .ui-test.log | tail -1); \
	vpassed=$$(echo "$$vline" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0); vpassed=$${vpassed:-0}; \
	vfailed=$$(echo "$$vline" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || echo 0); vfailed=$${vfailed:-0}; \
	if [ $$vrc -ne 0 ] && [ $$vfailed -eq 0 ]; then vfailed=1; grep -E 'FAIL|Error' .ui-test.log | head -20; fi; \
	grep -E '^\s*(FAIL|×)' .ui-test.log; \
	echo "vitest: $$vpassed passed, $$vfailed failed"; \
	(cd $(UI) && node scripts/size.mjs) 2>&1 | tee -a .ui-test.log; src=$$?; \
	if [ $$src -eq 0 ]; then wpassed=1; wfailed=0; else wpassed=0; wfailed=1; fi; \
	(cd $(UI) && SHOPDESK_BIN=$(CURDIR)/$(BIN) node e2e/run.mjs) 2>&1 | tee -a .ui-test.log | { grep -vE '^e2e: ' || true; }; erc=$$?; \
	eline=$$(grep -E '^e2e: [0-9]+ passed' .ui-test.log | tail -1); \
	epassed=$$(echo "$$eline" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); epassed=$${epassed:-0}; \
	efailed=$$(echo "$$eline" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+'); efailed=$${efailed:-0}; \
	if [ $$erc -ne 0 ] && [ $$efailed -eq 0 ]; then efailed=1; fi; \
	echo "e2e: $$epassed passed, $$efailed failed (screenshots in $(UI)/test-results/)"; \
	skipped=$$(cat .test.log .ui-test.log | grep -c 'BACKEND-SKIP'); \
	echo "backend suites skipped (server missing): $$skipped"; \
	echo "$$((passed + vpassed + wpassed + epassed)) passed, $$((failed + vfailed + wfailed + efailed)) failed"; \
	[ $$rc -eq 0 ] && [ $$vrc -eq 0 ] && [ $$src -eq 0 ] && [ $$erc -eq 0 ]

# bench: the Go benchmarks, then every load scenario against a node in embedded and production mode
# (.ci/bench; `.ci/bench go` or `.ci/bench scenarios` for one half); results in bench-results.txt.
bench:
	.ci/bench

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $(GOFILES)

clean:
	rm -rf bin .test.log .ui-test.log $(UI)/test-results
