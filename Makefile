# latchkey: a Caddy module for keyless entry to legacy web apps.
GO      ?= go
BIN     := bin/caddy
PKGS    := ./...

.PHONY: build run test deps vet fmt-check bench load clean

build:
	$(GO) build -o $(BIN) ./cmd/caddy

# Starts Caddyfile.example: the gateway on http://localhost:8080 in front of
# the demo upstream on http://localhost:9080, state under ./data/.
run: build
	mkdir -p data
	./$(BIN) run --config Caddyfile.example --adapter caddyfile

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# The browser tests drive Debian's Chromium; install it when it is missing.
deps:
	@command -v chromium >/dev/null 2>&1 || command -v "$$CHROMIUM" >/dev/null 2>&1 || { \
		echo "installing chromium for the browser tests"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Benchmarks, then the load harness: plain reverse_proxy against latchkey in
# front of it, in the same run, with ratios.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(MAKE) load

load:
	$(GO) run ./cmd/latchkey-load -duration 5s -concurrency 16

clean:
	rm -rf bin
