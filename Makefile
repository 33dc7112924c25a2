# latchkey: a Caddy module for keyless entry to legacy web apps.
GO      ?= go
BIN     := bin/caddy
PKGS    := ./...

.PHONY: build run test deps vet fmt-check bench bench-deps gobench load clean

build:
	$(GO) build -o $(BIN) ./cmd/caddy

# Starts Caddyfile.example: the gateway on http://localhost:8080 in front of
# the demo upstream on http://localhost:9080, state under ./data/.
run: build
	mkdir -p data
	@echo "latchkey: open http://localhost:8080/ (the demo upstream behind the gateway); Ctrl-C stops"
	./$(BIN) run --config Caddyfile.example --adapter caddyfile

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# The browser tests drive Debian's Chromium, the PostgreSQL store's tests a
# PostgreSQL server; install them when they are missing.
deps:
	@command -v chromium >/dev/null 2>&1 || command -v "$$CHROMIUM" >/dev/null 2>&1 || { \
		echo "installing chromium for the browser tests"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@# caddymodule/examples_test.go runs examples/ with Debian's python3 (and
	@# its PyJWT) and php.
	@/usr/bin/python3 -c 'import jwt' >/dev/null 2>&1 && command -v php >/dev/null 2>&1 || { \
		echo "installing python3-jwt and php-cli for the examples' tests"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3-jwt php-cli >/dev/null; }
	@# The PostgreSQL store's tests start a throwaway PostgreSQL 15 cluster
	@# (internal/store/postgres/pgtest) unless LATCHKEY_TEST_PG_DSN names a server.
	@test -n "$$LATCHKEY_TEST_PG_DSN" || test -x /usr/lib/postgresql/15/bin/initdb || { \
		echo "installing postgresql-15 for the PostgreSQL store tests"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && { $$SUDO apt-get install -y -qq postgresql-15 >/dev/null 2>&1 || \
			$$SUDO apt-get install -y -qq postgresql >/dev/null; }; }

test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# latchkey next to plain Caddy under wrk, on loopback, in about 3½ minutes
# after the build: separate bin/caddy processes (plain reverse_proxy,
# latchkey on SQLite, latchkey on a throwaway PostgreSQL cluster,
# forward_auth, a 1k and a 1M sessions store), interleaved rounds, two
# tables of ratios (SQLite, PostgreSQL), also written to $(BENCH_JSON).
# Fails if any latchkey request that should succeed does not get its 2xx,
# or PostgreSQL cannot start (BENCH_FLAGS=-no-postgres leaves it out).
# BENCHMARKS.md has the latest tables. Flags: make bench BENCH_FLAGS='-round 3s'.
BENCH_JSON  ?= bin/bench-results.json
BENCH_FLAGS ?=
bench: bench-deps build
	$(GO) build -o bin/latchkey-bench ./cmd/latchkey-bench
	./bin/latchkey-bench -caddy $(BIN) -json $(BENCH_JSON) $(BENCH_FLAGS)

# wrk and PostgreSQL are Debian's; install them when they are missing.
bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing wrk for make bench"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk >/dev/null; }
	@case "$(BENCH_FLAGS)" in *-no-postgres*) exit 0;; esac; \
	test -x /usr/lib/postgresql/15/bin/initdb || { \
		echo "installing postgresql-15 for make bench's PostgreSQL rows"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && { $$SUDO apt-get install -y -qq postgresql-15 >/dev/null 2>&1 || \
			$$SUDO apt-get install -y -qq postgresql >/dev/null; }; }

# The Go micro-benchmarks, briefly (not part of make bench).
GOBENCH_PKGS ?= ./internal/gate/ ./internal/session/
gobench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms $(GOBENCH_PKGS)

# The in-process load harness: Caddy, clients and upstream in one process,
# plain reverse_proxy against latchkey, with CPU per request and latencies.
load:
	$(GO) run ./cmd/latchkey-load -duration 5s -concurrency 16

clean:
	rm -rf bin

# Every fuzz target for FUZZTIME each (the suite runs their seed corpora
# only). Crashers land in the package's testdata/fuzz, to be committed with
# the fix.
FUZZTIME ?= 60s
fuzz:
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done
