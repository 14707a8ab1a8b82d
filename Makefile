# cdnflow — the two commands of the README are `make run` and `make test`.
# Both install Varnish through apt-get first when it is missing (sudo when
# not root), because the dev service and the integration tests start real
# varnishd edges.
SHELL := /bin/bash
export GOTOOLCHAIN := local
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GO_TEST_FLAGS ?= -race -count=1 -timeout 75m

.PHONY: run test unit deps browser-deps tools build vet lint fmt-check bench fuzz-short workflowcheck \
	cluster-deps cluster-bins cluster-up cluster-down cluster-status test-cluster

run: deps
	go run ./cmd/cdnflow dev

test: deps browser-deps tools fmt-check vet lint workflowcheck
	go test $(GO_TEST_FLAGS) ./...
	$(MAKE) fuzz-short
	$(MAKE) test-cluster

# The fast loop: every test that needs neither varnishd nor a Temporal
# server. Test files that start the stack (testenv, stack,
# devtemporal, the cmd/cdnflow binary tests) carry `//go:build !unit`, so
# -tags unit leaves them out and no test binary links the Temporal server;
# edge tests that start varnishd skip under -short. `make test` runs
# everything, with -race.
unit:
	go test -tags unit -short -count=1 ./...

# A short run of the decoder/validator fuzz targets (FUZZTIME each); their
# seeds also run in every `go test`. httpapi's FuzzQueryParams runs its seeds
# only here: fuzzing it would instrument the embedded Temporal server that
# httpapi's other tests link, a ten-minute build.
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with
# "context deadline exceeded" when a duration ends mid-exec (golang/go#75804,
# fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 50000x
FUZZ_TARGETS := ./service:FuzzValidatePrewarm ./service:FuzzDistributionBody ./service:FuzzSplitPurgeList \
	./inventory:FuzzParse
fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn ($$pkg, $(FUZZTIME))"; \
		go test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

deps:
	@if ! command -v varnishd >/dev/null 2>&1 || ! dpkg -s varnish-modules >/dev/null 2>&1; then \
		echo "installing varnish and varnish-modules with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq varnish varnish-modules; \
	fi
	@# The Debian package starts a system varnishd on :6081; cdnflow runs its own.
	@if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet varnish 2>/dev/null; then $(SUDO) systemctl stop varnish; fi

# Headless Chromium for the browser test (httpapi/browser_test.go).
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing chromium with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; \
	fi

build:
	go build -o bin/cdnflow ./cmd/cdnflow

# Programs the tests and the local cluster run, built from the Go module
# proxy into bin/ (git-ignored): versitygw, a real S3 gateway (posix
# backend), is the S3 payload store of internal/s3test and of the cluster.
# Rebuilt only when bin/versitygw is missing or another version.
VERSITYGW_VERSION := v1.8.0
VERSITYGW := $(CURDIR)/bin/versitygw
tools:
	@if ! go version -m $(VERSITYGW) 2>/dev/null | grep -q "mod[[:space:]]*github.com/versity/versitygw[[:space:]]*$(VERSITYGW_VERSION)"; then \
		echo "building versitygw $(VERSITYGW_VERSION) into bin/"; \
		GOBIN=$(CURDIR)/bin go install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi

vet:
	go vet ./...

# staticcheck (its default checks) and errcheck, both pinned go tools of the
# module (go.mod `tool`), built from the module cache. errcheck_excludes.txt
# lists the few calls whose error a caller may drop, each with its reason;
# every other dropped error is an explicit `_ =` with a comment. The cluster
# build tag adds the kill tests of stack/cluster.
lint:
	go tool staticcheck ./...
	go tool staticcheck -tags cluster ./stack/cluster/
	go tool errcheck -exclude errcheck_excludes.txt ./...
	go tool errcheck -exclude errcheck_excludes.txt -tags cluster ./stack/cluster/

# The SDK's determinism checker over the workflow code; it fails on a
# non-deterministic call (time.Now, map iteration, goroutines, I/O ...).
workflowcheck:
	go tool workflowcheck ./workflows/...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The local scale-out cluster (stack/cluster, docs/operations.md "Local
# cluster"): PostgreSQL from Debian's package, the Temporal server and its
# SQL tool built from the pinned go.temporal.io/server (go.mod tool
# directives), the S3 payload store (versitygw, `make tools`), the Web UI, the edges with their connectors, two workers and
# two APIs, each its own process; pidfiles and logs in CLUSTER_DIR.
# CLUSTER_FLAGS passes flags to `cdnflow cluster up` (-h lists them);
# CDNFLOW_* variables reach the workers and APIs.
CLUSTER_DIR ?= .cluster
CLUSTER_FLAGS ?=

cluster-deps: deps
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		echo "installing postgresql with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; \
	fi

cluster-bins: tools
	go build -o bin/cdnflow ./cmd/cdnflow
	go build -o bin/temporal-server go.temporal.io/server/cmd/server
	go build -o bin/temporal-sql-tool go.temporal.io/server/cmd/tools/sql

cluster-up: cluster-deps cluster-bins
	bin/cdnflow cluster up --dir $(CLUSTER_DIR) $(CLUSTER_FLAGS)

cluster-down:
	@if [ -x bin/cdnflow ]; then bin/cdnflow cluster down --dir $(CLUSTER_DIR); fi

cluster-status:
	bin/cdnflow cluster status --dir $(CLUSTER_DIR) $(CLUSTER_FLAGS)

# Kill tests on a cluster of its own (temp dir, free ports): build tag
# cluster, so `go test ./...` does not run them. 3–3.5 minutes wall with
# warm builds (measured at load 17–23 on 2 cores); the first run also builds
# the three binaries without -race (the Temporal server module, once).
test-cluster: cluster-deps cluster-bins
	CDNFLOW_CLUSTER_BIN_DIR=$(CURDIR)/bin go test -tags cluster -count=1 -timeout 30m -v ./stack/cluster/
