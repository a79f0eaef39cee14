# pairing: `make help` lists the targets.
GO       ?= go
PREFIX   ?= /usr/local
BIN      := bin/pairing
RUN_DIR  := .run
UNITDIR  ?= /etc/systemd/system
SYSCTLDIR ?= /etc/sysctl.d
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/lanpairing/pairing/pairing.Version=$(VERSION)
# Debian packages the tests need: ip (namespaces, veth, bridges), nft
# (firewall and multicast-filter variants of the simulated LANs),
# systemd-analyze (the unit file), setpriv (another uid), and avahi with
# its D-Bus (a real mDNS peer), coturn (a real TURN server), chromium (a
# real phone browser) and firefox-esr (the other engine), faketime (a
# browser's clock a year ahead), tmux (an 80x24 terminal), systemd-nspawn and debootstrap (a real systemd as
# PID 1 in a container; libnss-mymachines, which it may pull, edits
# /etc/nsswitch.conf: the file is put back); the daemons
# run only inside test namespaces.
TEST_PKGS := iproute2:ip nftables:nft systemd:systemd-analyze util-linux:setpriv \
	avahi-daemon:avahi-daemon avahi-utils:avahi-browse dbus:dbus-daemon coturn:turnserver chromium:chromium \
	systemd-container:systemd-nspawn debootstrap:debootstrap firefox-esr:firefox-esr faketime:faketime tmux:tmux

.PHONY: help build run test bench screenshots lint fuzz install uninstall deps

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build bin/pairing
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pairing

run: build ## run the daemon with a pairing window open (QR on the terminal), state in ./.run
	$(BIN) serve --open --state-dir $(RUN_DIR)/state --socket $(RUN_DIR)/pairing.sock

deps: ## install the Debian packages the tests need, when missing (as root)
	@missing=""; for p in $(TEST_PKGS); do command -v $${p#*:} >/dev/null 2>&1 || missing="$$missing $${p%%:*}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
			cp -p /etc/nsswitch.conf /tmp/pairing-nsswitch.conf 2>/dev/null; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; rc=$$?; \
			if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
			if [ -f /tmp/pairing-nsswitch.conf ]; then cp -p /tmp/pairing-nsswitch.conf /etc/nsswitch.conf; rm -f /tmp/pairing-nsswitch.conf; fi; \
			[ $$rc = 0 ] || exit $$rc; \
		else echo "missing:$$missing (install as root; namespace tests will skip)"; fi; \
	fi

test: deps ## run all tests with -race, namespace integration tests included (root)
	$(GO) test -race -count=1 -timeout 45m ./...

bench: deps ## measure speed in simulated LANs; prints `bench <name> <value> <unit>`
	@mkdir -p $(RUN_DIR); PAIRING_BENCH=1 $(GO) test -count=1 -run '^TestBench(Figures|QRRender)$$' -v ./internal/e2e ./cmd/pairing >$(RUN_DIR)/bench.log 2>&1; rc=$$?; \
	grep '^bench ' $(RUN_DIR)/bench.log; if [ $$rc != 0 ]; then cat $(RUN_DIR)/bench.log; exit $$rc; fi

screenshots: deps ## save the phone page's states at phone size (Chromium) in .run/screenshots, to look at
	@mkdir -p $(RUN_DIR)/screenshots; PAIRING_SCREENSHOTS=$(CURDIR)/$(RUN_DIR)/screenshots $(GO) test -count=1 -run '^TestPhone$$' ./internal/e2e && ls $(RUN_DIR)/screenshots

lint: ## gofmt and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz: ## fuzz every decoder of outside input for 30 s each
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 30s ./discovery/beacon
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./internal/ident
	$(GO) test -run '^$$' -fuzz '^FuzzConfirmRequest$$' -fuzztime 30s ./discovery
	$(GO) test -run '^$$' -fuzz '^FuzzParsePayload$$' -fuzztime 30s ./pairing
	$(GO) test -run '^$$' -fuzz '^FuzzPairRequest$$' -fuzztime 30s ./pairing
	$(GO) test -run '^$$' -fuzz '^FuzzProbeRequest$$' -fuzztime 30s ./pairing
	$(GO) test -run '^$$' -fuzz '^FuzzStoreDecode$$' -fuzztime 30s ./pairing
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime 30s ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzFingerprints$$' -fuzztime 30s ./pairing/rtc
	$(GO) test -run '^$$' -fuzz '^FuzzReceiver$$' -fuzztime 30s ./pairing/rtc
	$(GO) test -run '^$$' -fuzz '^FuzzFilterCandidates$$' -fuzztime 30s ./pairing/rtc
	$(GO) test -run '^$$' -fuzz '^FuzzDuplex$$' -fuzztime 30s ./pairing/rtc
	$(GO) test -run '^$$' -fuzz '^FuzzBulkRequest$$' -fuzztime 30s ./pairing/rtc
	$(GO) test -run '^$$' -fuzz '^FuzzName$$' -fuzztime 30s ./internal/termsafe
	$(GO) test -run '^$$' -fuzz '^FuzzGuardHost$$' -fuzztime 30s ./pairing/web
	$(GO) test -run '^$$' -fuzz '^FuzzMDNSAnswer$$' -fuzztime 30s ./discovery
	$(GO) test -run '^$$' -fuzz '^FuzzMDNSBrowseAnswer$$' -fuzztime 30s ./discovery

install: ## install bin/pairing (built when missing), unit, example config, completions, man pages; as root: `make build && sudo make install`
	@# sudo's secure_path has no go: then an already built bin/pairing is used as it is.
	@if command -v $(GO) >/dev/null 2>&1; then $(MAKE) --no-print-directory build || exit 1; \
	elif [ -x $(BIN) ]; then echo "installing $(BIN) as built ($$($(BIN) --version)): '$(GO)' is not on PATH to rebuild it"; \
	else echo "make install: $(BIN) is not built and '$(GO)' is not on PATH (sudo resets PATH): run 'make build' as yourself first, then 'sudo make install'" >&2; exit 1; fi
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/pairing
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/pairing|$(PREFIX)/bin/pairing|' cmd/pairing/systemd/pairing.service > $(DESTDIR)$(UNITDIR)/pairing.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/pairing.service
	install -D -m 0644 cmd/pairing/systemd/60-pairing.conf $(DESTDIR)$(SYSCTLDIR)/60-pairing.conf
	@# /etc/pairing belongs to root: made here, systemd's ConfigurationDirectory= would give it the (dynamic) service user
	install -d -m 0755 $(DESTDIR)/etc/pairing && if [ "$$(id -u)" = 0 ]; then chown root:root $(DESTDIR)/etc/pairing; fi
	install -m 0644 cmd/pairing/systemd/pairing.conf.example $(DESTDIR)/etc/pairing/pairing.conf.example
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/pairing
	$(BIN) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_pairing
	$(BIN) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/pairing.fish
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/pairing*.1 $(DESTDIR)$(PREFIX)/share/man/man5/pairing.conf.5 $(DESTDIR)$(PREFIX)/share/man/man8/pairing*.8
	$(BIN) man $(DESTDIR)$(PREFIX)/share/man
	@echo "now: systemctl daemon-reload; systemctl enable --now pairing   (man pairing-serve: files, ports, firewall)"
	@echo "and:  sysctl --system   (4 MiB UDP buffers; in a container the host's values apply, set them there)"

uninstall: ## remove what install put in place (not the state in /var/lib/pairing); the binary also where the installed unit says
	@unit=$(DESTDIR)$(UNITDIR)/pairing.service; \
	if [ -f $$unit ]; then bin=$$(sed -n 's|^ExecStart=\([^ ]*\).*|\1|p' $$unit); \
		[ -n "$$bin" ] && rm -f $(DESTDIR)$$bin && prefix=$${bin%/bin/pairing} && \
		rm -rf $(DESTDIR)$$prefix/share/bash-completion/completions/pairing $(DESTDIR)$$prefix/share/zsh/site-functions/_pairing \
			$(DESTDIR)$$prefix/share/fish/vendor_completions.d/pairing.fish $(DESTDIR)$$prefix/share/man/man1/pairing*.1 \
			$(DESTDIR)$$prefix/share/man/man5/pairing.conf.5 $(DESTDIR)$$prefix/share/man/man8/pairing*.8; fi; true
	rm -f $(DESTDIR)$(PREFIX)/bin/pairing $(DESTDIR)$(UNITDIR)/pairing.service $(DESTDIR)$(SYSCTLDIR)/60-pairing.conf $(DESTDIR)/etc/pairing/pairing.conf.example
	rm -f $(DESTDIR)$(PREFIX)/share/bash-completion/completions/pairing $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_pairing $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/pairing.fish $(DESTDIR)$(PREFIX)/share/man/man1/pairing*.1 \
		$(DESTDIR)$(PREFIX)/share/man/man5/pairing.conf.5 $(DESTDIR)$(PREFIX)/share/man/man8/pairing*.8
