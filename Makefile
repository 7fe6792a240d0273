# socketley — build, test, demo and package.
GO      ?= go
BIN     ?= bin/socketley
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//' || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PKG     := github.com/socketley/socketley/internal/version
LDFLAGS := -s -w -X $(PKG).version=$(VERSION) -X $(PKG).commit=$(COMMIT) -X $(PKG).date=$(DATE)
PREFIX  ?= /usr/local

.PHONY: all build test unit-test lint fuzz demo examples-test bench clean install

all: build

build: ## build bin/socketley
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/socketley

test: ## lint, then every test (unit + integration) inside the private systemd sandbox
	scripts/test.sh

unit-test: ## pure tests only (no systemd needed)
	$(GO) test -race -count=1 ./...

lint: ## gofmt, go vet, staticcheck
	scripts/lint.sh

fuzz: ## run each fuzz target briefly (FUZZTIME, default 10s)
	scripts/fuzz.sh

demo: build ## start the daemon and a managed example, kill it, watch systemd bring it back
	scripts/demo.sh

install: build ## install to $(PREFIX)/bin
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/socketley

clean:
	rm -rf bin dist
