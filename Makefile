# pidreuse — make targets for developers and CI. Run as root on Debian 12
# or Ubuntu 24.04.
#   make e2e    the VM tier: builds the node image, boots libvirt VMs, real reboots
#   make test   vet, unit tests and the sandbox tier (namespaces, seconds)
# Both pull in what they need through `make deps`.

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export CGO_ENABLED ?= 0

GO        ?= go
BIN       := bin
REPORTS   ?= $(CURDIR)/reports
LIBVIRT_SOCK := /var/run/libvirt/libvirt-sock

# Packages the harness and its tests use on this machine: QEMU and
# libvirt for the VMs, mmdebstrap and e2fsprogs for the image, Debian's CNI
# plugins, what CRI-O's cgo build (seccomp) and pinns' static build need,
# and tini to reap QEMU where no init does (deps-daemons). Debian 12 and
# Ubuntu 24.04 (universe) name all of them alike.
APT_PACKAGES := qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients \
	mmdebstrap e2fsprogs containernetworking-plugins iproute2 \
	gcc libc6-dev pkg-config libseccomp-dev git tini
# What differs by distribution ($$ID of /etc/os-release), added to the
# list: Ubuntu installs the node from a Debian mirror (images/mirror.go)
# and needs Debian's archive keys to trust it; Debian always has them.
OS_ID := $(shell . /etc/os-release 2>/dev/null && echo $$ID)
APT_PACKAGES_debian :=
APT_PACKAGES_ubuntu := debian-archive-keyring
APT_PACKAGES += $(APT_PACKAGES_$(OS_ID))

# make e2e runs the VM specs with these Ginkgo labels; CI shards the suite
# by them (.github/workflows/e2e.yml), one JUnit file per shard.
E2E_LABELS ?= vm
E2E_JUNIT  ?= $(REPORTS)/vm-junit.xml

# Every build tag the tree uses: vet sees every file.
BUILD_TAGS := libvirt componentbuild imagebuild e2e

.PHONY: all build deps deps-apt deps-sshd deps-daemons deps-plugins test unit libvirt e2e-sandbox e2e image bench lint \
	test-components test-image clean

all: build

# Every command under cmd/: the CLI, and the node-side binaries it lays
# into images (nodeagent, failonce, nodecri, podserver, cnirecord).
build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

deps: deps-apt deps-sshd deps-daemons deps-plugins

# Installs only what is missing, so a warm machine pays nothing.
deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	case "$(OS_ID)" in debian|ubuntu) ;; *) echo "deps: $(OS_ID) is neither Debian nor Ubuntu: trying the Debian package names";; esac; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: Debian packages present"; fi

# OpenSSH's sshd for the qemu+ssh tests (internal/loopsshd runs one on
# 127.0.0.1 with keys of its own). Installed with services held back
# (policy-rc.d): the package would otherwise start the system sshd on every
# address, and this machine's network is not ours to open.
deps-sshd: deps-apt
	@if [ -x /usr/sbin/sshd ]; then echo "deps: sshd present"; else \
		echo "deps: installing openssh-server (its service is not started)"; \
		own=; if [ ! -e /usr/sbin/policy-rc.d ]; then own=1; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server; rc=$$?; \
		[ -z "$$own" ] || rm -f /usr/sbin/policy-rc.d; exit $$rc; fi

# No systemd as PID 1 here: start the daemons by hand when they are not
# running. libvirt's NAT network is never used: drop its autostart link so
# libvirtd cannot create a bridge on the host. libvirtd runs under tini -s:
# each QEMU it starts detaches and is adopted by the nearest reaper, and a
# PID 1 that is no init (a container's or a microVM's agent) reaps late:
# measured here, a killed QEMU stayed a zombie ~2 s, and libvirt waits for
# it in every destroy (each teardown) and every guest reboot.
deps-daemons: deps-apt
	@rm -f /etc/libvirt/qemu/networks/autostart/default.xml
	@# Without udev /dev/kvm stays 0600 root: libvirt-qemu cannot open it and
	@# libvirt then re-probes QEMU on every define (30-60 s each). This is the
	@# mode udev gives it on a normal Debian machine.
	@if [ -c /dev/kvm ] && getent group kvm >/dev/null; then chgrp kvm /dev/kvm && chmod 0660 /dev/kvm; fi
	@# Ready means the socket answers, not that a process exists: a libvirtd
	@# that is shutting down still shows in pgrep.
	@if ! virsh -q -c qemu:///system uri >/dev/null 2>&1; then \
		for i in $$(seq 1 25); do pgrep -x libvirtd >/dev/null || break; sleep 0.2; done; \
		pgrep -x virtlogd >/dev/null || { echo "deps: starting virtlogd"; virtlogd -d; }; \
		pgrep -x libvirtd >/dev/null || { echo "deps: starting libvirtd (under tini, log /var/log/pidreuse-libvirtd.log)"; \
			setsid tini -s -- libvirtd </dev/null >/var/log/pidreuse-libvirtd.log 2>&1 & }; \
	fi
	@for i in $$(seq 1 150); do virsh -q -c qemu:///system uri >/dev/null 2>&1 && exit 0; sleep 0.2; done; \
		echo "deps: libvirtd does not answer on $(LIBVIRT_SOCK): start it by hand (libvirtd -d) to see why"; exit 1

deps-plugins: build
	$(BIN)/pidreuse plugins --plugin-version all

test: deps build lint unit libvirt e2e-sandbox

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e/)

# The libvirt client against the real libvirtd: blank domains that sit in
# SeaBIOS (define, autodestroy, owner tags, the destroy+start reboot; ~40 s).
libvirt: deps
	$(GO) test -count=1 -timeout 10m -tags libvirt ./harness/libvirt/

e2e-sandbox: build
	@mkdir -p $(REPORTS)
	@rm -f $(REPORTS)/sandbox/digest.txt
	PIDREUSE_REPORT_DIR=$(REPORTS)/sandbox $(GO) test -count=1 -timeout 20m ./e2e/sandbox/ \
		-ginkgo.label-filter=sandbox -ginkgo.junit-report=$(REPORTS)/sandbox-junit.xml \
		; st=$$?; cat $(REPORTS)/sandbox/digest.txt 2>/dev/null; exit $$st
	$(GO) test -count=1 -timeout 10m ./e2e/bisect/

# Real builds, on demand (not in make test: they take 15-60 minutes cold):
# every component from source, then the bug-era CRI-O from its source
# (skipped, saying why, when no source is at hand: docs/crio-nodes.md);
# the node image from Debian packages and its cache hit.
test-components: deps
	$(GO) test -count=1 -tags componentbuild -timeout 90m -v ./images/components -run 'TestRealBuild'

test-image: deps build
	$(GO) test -count=1 -tags imagebuild -timeout 30m -v ./images -run TestRealBuild

image: deps build
	$(BIN)/pidreuse image build

# The VM suite runs in E2E_PROCS parallel Ginkgo processes (the ginkgo CLI
# is pinned in go.mod's tools), each with its own VMs: one per core, and no
# more than free memory / 1.5 GiB (a TCG guest uses ~1 GiB, QEMU and the
# harness the rest). E2E_PROCS=1 runs it serially.
E2E_PROCS ?= $(shell n=$$(nproc); m=$$(awk '/^MemAvailable:/ {print int($$2 / 1572864)}' /proc/meminfo); \
	p=$$(( n < m ? n : m )); echo $$(( p > 0 ? p : 1 )))

e2e: deps build
	@mkdir -p $(REPORTS)
	@echo "e2e: $(E2E_PROCS) Ginkgo processes (E2E_PROCS)"
	@rm -f $(REPORTS)/vm/digest.txt
	@# The suite's digest (each failed spec and the first lines of why,
	@# each retried node start) comes last, where a CI log is read from.
	PIDREUSE_REPORT_DIR=$(REPORTS)/vm $(GO) tool ginkgo -v --procs=$(E2E_PROCS) --tags e2e --timeout 85m \
		--label-filter='$(E2E_LABELS)' --junit-report=$(E2E_JUNIT) ./e2e/vm/ \
		; st=$$?; cat $(REPORTS)/vm/digest.txt 2>/dev/null; exit $$st

bench: deps build
	$(GO) test -run '^$$' -bench 'SandboxMatrix|ImageBuildCacheHit' -benchtime 5x ./e2e/bench/
	@# The VM benchmarks, one run each: the legacy matrix and the CRI-O
	@# scenarios against their two boots, a CRI-O bisect step (build + run;
	@# crio-1.17 ones skip, saying why, without a CRI-O source).
	PIDREUSE_BENCH_VM=1 $(GO) test -v -run '^$$' -bench 'VMMatrix|CRIOScenario|CRIOBisectStep' -benchtime 1x -timeout 90m ./e2e/bench/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags '$(BUILD_TAGS)' ./...
	@$(GO) mod tidy -diff || { echo "lint: go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	$(GO) run github.com/rhysd/actionlint/cmd/actionlint@v1.7.12 .github/workflows/*.yml

clean:
	-[ -x $(BIN)/pidreuse ] && $(BIN)/pidreuse clean --older-than 30m
	rm -rf $(BIN) $(REPORTS)
