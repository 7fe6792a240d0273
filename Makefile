# socketley — build, test, demo and package.
GO      ?= go
BIN     ?= bin/socketley
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//' || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PKG     := github.com/socketley/socketley/internal/version
LDFLAGS := -s -w -X $(PKG).version=$(VERSION) -X $(PKG).commit=$(COMMIT) -X $(PKG).date=$(DATE)
PREFIX  ?= /usr/local
STRESS_COUNT ?= 20
STRESS_PKGS  ?= ./...

.PHONY: all build test stress unit-test lint fuzz demo examples-test bench bench-lifecycle clean install

all: build

build: ## build bin/socketley (static: CGO_ENABLED=0, see manager/users.go)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/socketley

test: ## lint, then every test (unit + integration) inside the private systemd sandbox
	scripts/test.sh

stress: ## go test -race -count=$(STRESS_COUNT) under a CPU hog on every core; runs/failures per package (STRESS_PKGS="./manager ./units")
	STRESS_COUNT=$(STRESS_COUNT) STRESS_PKGS="$(STRESS_PKGS)" scripts/stress.sh

unit-test: ## pure tests only (no systemd needed)
	$(GO) test -race -count=1 ./...

lint: ## gofmt, go vet, staticcheck
	scripts/lint.sh

fuzz: ## run each fuzz target briefly (FUZZTIME: executions like 20000x (default) or a duration)
	scripts/fuzz.sh

demo: build ## start the daemon and a managed example, kill it, watch systemd bring it back
	scripts/demo.sh

examples-test: ## run the examples/managed scenarios against a private daemon (in the systemd sandbox as root)
	scripts/examples-test.sh

bench: ## echo-server benchmark: wrapper io_uring/net vs Go net vs gnet (server CPU 0, load CPU 1; BENCHFLAGS="-runs 5 -d 2s")
	$(GO) -C bench run . $(BENCHFLAGS)

bench-lifecycle: build ## lifecycle benchmark against the sandboxed systemd (root): add, kill -9, ls at 1,000, daemon restart
	scripts/systemd-sandbox.sh -- env GOCACHE="$$(go env GOCACHE)" $(GO) -C bench run ./lifecycle -socketley $(CURDIR)/$(BIN) $(BENCHFLAGS)

.PHONY: bench-start
bench-start: ## CLI start-up next to a Go hello-world, both built like make build, run in turn (BENCHFLAGS="-n 200 -cmd '--version'")
	$(GO) -C bench run ./start $(BENCHFLAGS)

.PHONY: bench-listen
bench-listen: build ## fresh connections at 500/s for 30 s against the Go echo example while it is killed, restarted and upgraded: with add --listen and without (root, sandbox; BENCHFLAGS="-rate 500 -d 30s")
	scripts/systemd-sandbox.sh -- env GOCACHE="$$(go env GOCACHE)" $(GO) -C bench run ./listen -socketley $(CURDIR)/$(BIN) $(BENCHFLAGS)

.PHONY: bench-restart
bench-restart: build ## kill -9 → answering, socketley next to PM2, same C echo binary and run (root; installs PM2 with npm if missing; BENCHFLAGS="-restart-sec 0 -uptime 15s -v")
	scripts/bench-restart.sh $(BENCHFLAGS)

.PHONY: bench-remote
bench-remote: build ## socketley -H ssh:// against a real sshd on 127.0.0.1: apply of N runtimes, ls, prune, next to one bare ssh login (root, sandbox; BENCHFLAGS="-n 10 -r 5")
	scripts/systemd-sandbox.sh -- scripts/bench-remote.sh -b $(CURDIR)/$(BIN) $(BENCHFLAGS)

install: build ## install to $(PREFIX)/bin
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/socketley

clean:
	rm -rf bin dist

# ---------------------------------------------------------------------------
# Packaging: man pages, completions, .deb/.rpm (nfpm), package test.
# Owned by packaging/; see packaging/nfpm.yaml and docs/install.md.
#   make deb rpm            -> dist/socketley_<ver>-1_<arch>.deb, dist/socketley-<ver>-1.<arch>.rpm
#   make packages           -> both
#   make man                -> dist/man/*.1 (and dist/completions/) for a look
#   make package-test       -> scripts/package-test.sh (root; installs, tests and purges the .deb)
# Overridable: PKG_VERSION (default: from git describe via packaging/pkgversion.sh),
# PKG_RELEASE, PKG_ARCH, PKG_DIR (output directory), PKG_README, NFPM_VERSION.
# ---------------------------------------------------------------------------
NFPM_VERSION      ?= v2.45.2
# pinned tool, run without touching go.mod (built once, then cached by go)
NFPM              ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
# computed once per make run (`make deb rpm` must give both packages the same version)
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
endif
ifeq ($(origin PKG_VERSION),undefined)
PKG_VERSION       := $(shell packaging/pkgversion.sh '$(VERSION)' '$(SOURCE_DATE_EPOCH)')
endif
PKG_RELEASE       ?= 1
PKG_ARCH          ?= $(shell $(GO) env GOARCH)
PKG_DIR           ?= dist
PKG_README        ?= README.md
PKG_STAGE         := dist/stage
PKG_ENV            = SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) SOCKETLEY_PKG_VERSION=$(PKG_VERSION) \
                     SOCKETLEY_PKG_RELEASE=$(PKG_RELEASE) SOCKETLEY_PKG_ARCH=$(PKG_ARCH)

.PHONY: man pkg-stage deb rpm packages package-test

man: build ## man pages and completions generated from the cobra commands, in dist/
	rm -rf dist/man dist/completions
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run -ldflags '$(LDFLAGS)' ./internal/tools/gendocs --man dist/man --completions dist/completions

pkg-stage: build
	@test -f $(PKG_README) || { echo "make: $(PKG_README) is missing; the packages must ship it" >&2; exit 1; }
	rm -rf $(PKG_STAGE)
	mkdir -p $(PKG_STAGE)/man $(PKG_STAGE)/completions $(PKG_DIR)
	install -m 0755 $(BIN) $(PKG_STAGE)/socketley
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run -ldflags '$(LDFLAGS)' ./internal/tools/gendocs --man $(PKG_STAGE)/man --completions $(PKG_STAGE)/completions
	gzip -9n $(PKG_STAGE)/man/*.1
	install -m 0644 $(PKG_README) $(PKG_STAGE)/README.md
	install -m 0644 LICENSE $(PKG_STAGE)/LICENSE

deb: pkg-stage ## build the .deb into $(PKG_DIR)/
	$(PKG_ENV) $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(PKG_DIR)/

rpm: pkg-stage ## build the .rpm into $(PKG_DIR)/
	$(PKG_ENV) $(NFPM) package --config packaging/nfpm.yaml --packager rpm --target $(PKG_DIR)/

packages: deb rpm

package-test: ## build both packages, then install/upgrade/purge them under a sandboxed systemd (root)
	scripts/package-test.sh

# From source, everything a package installs, under $(PREFIX) (default /usr/local; systemd and
# systemd-sysusers also read $(PREFIX)/lib/... when PREFIX is /usr/local or /usr). ExecStart=
# is rewritten to $(PREFIX)/bin/socketley. Then: systemd-sysusers; systemctl daemon-reload;
# systemctl enable --now socketley   (docs/install.md)
INSTALL_UNITDIR     ?= $(PREFIX)/lib/systemd/system
INSTALL_USERUNITDIR ?= $(PREFIX)/lib/systemd/user
INSTALL_SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL_SHAREDIR    ?= $(PREFIX)/share
.PHONY: install-all uninstall-all
install-all: install man ## install binary, units, sysusers.d, man pages and completions under $(PREFIX)
	install -d $(DESTDIR)$(INSTALL_UNITDIR) $(DESTDIR)$(INSTALL_USERUNITDIR) $(DESTDIR)$(INSTALL_SYSUSERSDIR) \
		$(DESTDIR)$(INSTALL_SHAREDIR)/man/man1 $(DESTDIR)$(INSTALL_SHAREDIR)/bash-completion/completions \
		$(DESTDIR)$(INSTALL_SHAREDIR)/zsh/site-functions $(DESTDIR)$(INSTALL_SHAREDIR)/fish/vendor_completions.d
	sed 's|/usr/bin/socketley|$(PREFIX)/bin/socketley|' packaging/systemd/socketley.service >$(DESTDIR)$(INSTALL_UNITDIR)/socketley.service
	sed 's|/usr/bin/socketley|$(PREFIX)/bin/socketley|' packaging/systemd/user/socketley.service >$(DESTDIR)$(INSTALL_USERUNITDIR)/socketley.service
	chmod 0644 $(DESTDIR)$(INSTALL_UNITDIR)/socketley.service $(DESTDIR)$(INSTALL_USERUNITDIR)/socketley.service
	install -m 0644 packaging/systemd/socketley.socket $(DESTDIR)$(INSTALL_UNITDIR)/socketley.socket
	install -m 0644 packaging/systemd/user/socketley.socket $(DESTDIR)$(INSTALL_USERUNITDIR)/socketley.socket
	install -m 0644 packaging/sysusers.d/socketley.conf $(DESTDIR)$(INSTALL_SYSUSERSDIR)/socketley.conf
	install -m 0644 dist/man/*.1 $(DESTDIR)$(INSTALL_SHAREDIR)/man/man1/
	install -m 0644 dist/completions/socketley.bash $(DESTDIR)$(INSTALL_SHAREDIR)/bash-completion/completions/socketley
	install -m 0644 dist/completions/_socketley $(DESTDIR)$(INSTALL_SHAREDIR)/zsh/site-functions/_socketley
	install -m 0644 dist/completions/socketley.fish $(DESTDIR)$(INSTALL_SHAREDIR)/fish/vendor_completions.d/socketley.fish

uninstall-all: ## remove what install-all installed (stop and disable the service first)
	rm -f $(DESTDIR)$(PREFIX)/bin/socketley $(DESTDIR)$(INSTALL_UNITDIR)/socketley.service \
		$(DESTDIR)$(INSTALL_UNITDIR)/socketley.socket $(DESTDIR)$(INSTALL_USERUNITDIR)/socketley.socket \
		$(DESTDIR)$(INSTALL_USERUNITDIR)/socketley.service $(DESTDIR)$(INSTALL_SYSUSERSDIR)/socketley.conf \
		$(DESTDIR)$(INSTALL_SHAREDIR)/man/man1/socketley.1 $(DESTDIR)$(INSTALL_SHAREDIR)/man/man1/socketley-*.1 \
		$(DESTDIR)$(INSTALL_SHAREDIR)/bash-completion/completions/socketley \
		$(DESTDIR)$(INSTALL_SHAREDIR)/zsh/site-functions/_socketley \
		$(DESTDIR)$(INSTALL_SHAREDIR)/fish/vendor_completions.d/socketley.fish
