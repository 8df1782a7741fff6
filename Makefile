# Weft — build, test, lint, demo and benchmark entry points.
#
#   make build           every binary of the workspace into ./bin
#   make test            fmt-check vet lint generate-check unit e2e (what CI runs)
#   make demo            build, then run the shop demo (bounded load, exits 0 only if no request failed)
#   make bench           Go benchmarks + the data-path benchmark (direct / nginx pair / Weft pair;
#                        HTTP/1.1 1k/64k, HTTP/2, gRPC), results into BENCHMARKS.md (about 20 minutes),
#                        + sidecar memory against mesh size (bench-mem)
#   make lint            golangci-lint (pinned, installed into ./.cache/tools/bin) over every module
#   make generate        deepcopy + CRD YAML for api/v1alpha1 (controller-gen, pinned); api/xdsproto
#   make clean
#
# Modules come from go.work: `go test ./...` at the workspace root does not
# span modules, so every target iterates over them (or names them by path).

SHELL        := /usr/bin/env bash
.SHELLFLAGS  := -euo pipefail -c
.DEFAULT_GOAL := build

GO           ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
ROOT         := $(CURDIR)
BIN          := $(ROOT)/bin
TOOLS        := $(ROOT)/.cache/tools/bin
export PATH  := $(TOOLS):/usr/local/go/bin:$(PATH)

# Pinned tools.
GOLANGCI_LINT_VERSION  := v2.15.0
CONTROLLER_GEN         := sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
# fortio: later versions need a module the proxy refuses.
FORTIO_VERSION         := v1.65.0
# HTTP/2 conformance suite run against sidecar/h2server (TestH2Spec).
H2SPEC_VERSION         := v2.2.1+incompatible

GOLANGCI_LINT := $(TOOLS)/golangci-lint
FORTIO        := $(TOOLS)/fortio
H2SPEC        := $(TOOLS)/h2spec

# Workspace modules (relative dirs) and their import paths, from go.work.
MODULES      := $(shell $(GO) work edit -json | sed -n 's/.*"DiskPath": "\.\/\(.*\)".*/\1/p')
MODULE_PATHS := $(shell $(GO) list -m -f '{{.Path}}')
# Modules that hold at least one Go file (golangci-lint refuses an empty one).
GO_MODULES    = $(foreach m,$(MODULES),$(if $(shell find $(m) -name '*.go' -not -path '*/testdata/*' -print -quit),$(m)))
ALL_PKGS      = $(addsuffix /...,$(MODULE_PATHS))

# Build tags of every binary: grpcnotrace leaves out grpc's
# golang.org/x/net/trace and the html/template it imports (only
# grpc.EnableTracing uses them; Weft never sets it), and with text/template
# gone the linker can drop unused methods again: weft-sidecar 26.7 -> 22.3 MB,
# weft-control-plane 103 -> 66 MB, the sidecar's idle RSS 18.5 -> 16.5 MB.
# Binaries are static (CGO_ENABLED=0) as in the images: no libc and ld.so
# mapped, the sidecar's idle RSS another 1.7 MB less (BENCHMARKS.md,
# "Sidecar footprint").
GO_TAGS      ?= grpcnotrace

# Tunables.
UNIT_TIMEOUT ?= 10m
E2E_TIMEOUT  ?= 20m
E2E_RACE     ?= -race
GOTESTFLAGS  ?=
BENCHTIME    ?= 2s

section = @printf '\n==> %s\n' "$(1)"

.PHONY: all build generate generate-check fmt fmt-check vet lint unit e2e test demo \
        bench bench-go bench-data bench-mem bench-deps tools lint-tools clean modules help

all: build

help:
	@sed -n '2,12p' Makefile | sed 's/^# \{0,1\}//'

modules:
	@printf '%s\n' $(MODULES)

## ---------------------------------------------------------------- build

build:
	$(call section,build: every main package of the workspace -> ./bin)
	@mkdir -p $(BIN)
	@mains=$$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' $(ALL_PKGS) | grep -v '/hack/' | sort); \
	if [[ -z $$mains ]]; then echo "no main packages yet"; exit 0; fi; \
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(GO_TAGS)' -o $(BIN)/ $$mains; \
	for p in $$mains; do printf '  bin/%-28s %s\n' "$${p##*/}" "$$p"; done

## ---------------------------------------------------------------- generate

generate:
	$(call section,generate: controller-gen object + crd (api/); trimmed xDS types (api/xdsproto))
	cd api && $(GO) run $(CONTROLLER_GEN) object paths=./v1alpha1/... crd:crdVersions=v1 output:crd:dir=./crds
	cd api && $(GO) run ./hack/xdsproto -out .
	@echo "generated api/v1alpha1/zz_generated.deepcopy.go, api/crds/, api/xdsproto/**/*.pb.go and api/xdsproto/zz_generated.rules.go"

# Fails if regenerating changes any generated file (deepcopy, CRD YAML,
# the trimmed xDS types):
# compares against a copy taken just before, so it works on a dirty tree too
# (CI runs it on a clean clone, where it is the same as `git diff --exit-code`).
GENERATED := api/v1alpha1/zz_generated.deepcopy.go api/crds api/xdsproto
generate-check:
	$(call section,generate-check: generated files are up to date)
	@snap=$$(mktemp -d); trap 'rm -rf "$$snap"' EXIT; \
	mkdir -p "$$snap/before/crds" && cp api/v1alpha1/zz_generated.deepcopy.go "$$snap/before/" && cp -r api/crds/. "$$snap/before/crds/" && cp -r api/xdsproto "$$snap/before/"; \
	$(MAKE) --no-print-directory generate; \
	mkdir -p "$$snap/after/crds" && cp api/v1alpha1/zz_generated.deepcopy.go "$$snap/after/" && cp -r api/crds/. "$$snap/after/crds/" && cp -r api/xdsproto "$$snap/after/"; \
	if ! diff -ru "$$snap/before" "$$snap/after"; then \
	  echo "FAIL: generated files in api/ were stale (now regenerated): review and commit $(GENERATED)"; exit 1; \
	fi
	@echo "ok: $(GENERATED) are current"

## ---------------------------------------------------------------- format, vet, lint

fmt: $(GOLANGCI_LINT)
	$(call section,fmt: gofmt -s + golangci-lint fmt (gofumpt, goimports local prefix))
	gofmt -s -w $(MODULES)
	@for m in $(GO_MODULES); do (cd $$m && $(GOLANGCI_LINT) fmt --config $(ROOT)/.golangci.yml ./...); done

fmt-check:
	$(call section,fmt-check: gofmt -s -l)
	@out=$$(gofmt -s -l $(MODULES)); \
	if [[ -n $$out ]]; then echo "$$out"; echo "FAIL: files above need gofmt (make fmt)"; exit 1; fi
	@echo "ok: gofmt clean"

vet:
	$(call section,vet: go vet over every module)
	$(GO) vet $(ALL_PKGS)
	@echo "ok: go vet clean"

tools: $(GOLANGCI_LINT) $(FORTIO)
lint-tools: $(GOLANGCI_LINT) $(H2SPEC)
	@echo "ok: $$($(GOLANGCI_LINT) version | cut -d' ' -f1-4)"

# Installed with `go install` into ./.cache/tools/bin; reused while the version matches.
$(GOLANGCI_LINT): FORCE
	@if ! [[ -x $@ ]] || ! $@ version 2>/dev/null | grep -q "version $(GOLANGCI_LINT_VERSION:v%=%) "; then \
	  echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(TOOLS)"; \
	  GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

$(FORTIO): FORCE
	@if ! [[ -x $@ ]] || ! $@ version 2>/dev/null | grep -q "$(FORTIO_VERSION:v%=%)"; then \
	  echo "installing fortio $(FORTIO_VERSION) into $(TOOLS)"; \
	  GOBIN=$(TOOLS) $(GO) install fortio.org/fortio@$(FORTIO_VERSION); \
	fi

# h2spec prints no version of its own: reinstalled when the module's differs.
$(H2SPEC): FORCE
	@if ! [[ -x $@ ]] || ! $(GO) version -m $@ 2>/dev/null | grep -q "summerwind/h2spec[[:space:]]*$(H2SPEC_VERSION)"; then \
	  echo "installing h2spec $(H2SPEC_VERSION) into $(TOOLS)"; \
	  GOBIN=$(TOOLS) $(GO) install github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION); \
	fi

FORCE:

lint: $(GOLANGCI_LINT)
	$(call section,lint: golangci-lint $(GOLANGCI_LINT_VERSION) per module)
	@rc=0; for m in $(GO_MODULES); do \
	  echo "--- $$m"; \
	  (cd $$m && $(GOLANGCI_LINT) run --allow-parallel-runners --config $(ROOT)/.golangci.yml ./...) || rc=1; \
	done; \
	if ((rc)); then echo "FAIL: lint findings above"; exit 1; fi; echo "ok: lint clean"

## ---------------------------------------------------------------- tests

# Tests that rely on sync.Pool keeping what was put (allocation bounds,
# recycled responses); they skip under -race, where it drops items at random.
ALLOC_TESTS := Alloc|TestInboundTraceContextWithTracingOff|TestSpanKindOption|TestRecycle

unit: $(H2SPEC)
	$(call section,unit: go test -race over every module (e2e excluded))
	@pkgs=$$($(GO) list $(ALL_PKGS) | { grep -v '/tests/e2e/' || true; }); \
	if [[ -z $$pkgs ]]; then echo "no packages"; exit 0; fi; \
	H2SPEC=$(H2SPEC) $(GO) test -race -count=1 -timeout $(UNIT_TIMEOUT) $(GOTESTFLAGS) $$pkgs
	@# The allocation guards (testing.AllocsPerRun) skip under -race, where
	@# sync.Pool drops items at random: run them once more without it.
	$(GO) test -count=1 -timeout 5m -run '$(ALLOC_TESTS)' ./sidecar/...
	@# rawtcp's raw read(2)/write(2) path is built only without -race (race
	@# builds go through syscall.Read/Write): run all its tests on it too.
	$(GO) test -count=1 -timeout 2m ./sidecar/internal/rawtcp/

e2e: build
	$(call section,e2e: tests/e2e/... against the binaries in ./bin)
	@pkgs=$$($(GO) list github.com/weftmesh/weft/tests/e2e/...); \
	if [[ -z $$pkgs ]]; then echo "SKIP: no e2e packages yet (tests/e2e)"; exit 0; fi; \
	WEFT_BIN_DIR=$(BIN) $(GO) test $(E2E_RACE) -count=1 -timeout $(E2E_TIMEOUT) $(GOTESTFLAGS) $$pkgs

test: fmt-check vet lint generate-check unit e2e
	$(call section,test: all passed)

## ---------------------------------------------------------------- demo

DEMO_MESH ?= examples/shop/mesh.yaml
JAEGER ?= 0
demo: build
	$(call section,demo: shop through the mesh (bin/shop-demo))
	@[[ -x $(BIN)/shop-demo ]] || { echo "FAIL: bin/shop-demo not built (examples/shop/cmd/shop-demo)"; exit 1; }
ifeq ($(JAEGER),1)
	hack/jaeger/up.sh $(ROOT)/.cache/jaeger/run
	trap 'kill $$(cat $(ROOT)/.cache/jaeger/run/jaeger.pid) 2>/dev/null' EXIT; \
	$(BIN)/shop-demo -f $(DEMO_MESH) -bin $(BIN) --jaeger 127.0.0.1:4318 --jaeger-query http://127.0.0.1:16686
else
	$(BIN)/shop-demo -f $(DEMO_MESH) -bin $(BIN)
endif

## ---------------------------------------------------------------- benchmarks

BENCH_OUT  ?= $(ROOT)/BENCHMARKS.md
BENCH_RUN  ?= $(ROOT)/.cache/bench
BENCH_ARGS ?=

bench-deps: $(FORTIO)
	$(call section,bench-deps: wrk + nginx-light (apt, packaged services not started), fortio $(FORTIO_VERSION))
	@$(ROOT)/hack/apt-install.sh wrk nginx-light

# Go testing.B benchmarks that exist in the modules (packages with a func Benchmark*).
bench-go:
	$(call section,bench-go: Go benchmarks (-benchtime=$(BENCHTIME)))
	@mkdir -p $(BENCH_RUN)
	@dirs=$$(grep -rl --include='*_test.go' -E '^func Benchmark[A-Z_]' $(MODULES) 2>/dev/null | xargs -r -n1 dirname | sort -u); \
	if [[ -z $$dirs ]]; then echo "no Go benchmarks in the workspace yet" | tee $(BENCH_RUN)/gobench.txt; exit 0; fi; \
	pkgs=$$(for d in $$dirs; do (cd $$d && $(GO) list .); done); \
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=$(BENCHTIME) -count=1 -timeout 10m $$pkgs 2>&1 | tee $(BENCH_RUN)/gobench.txt

bench-data: build bench-deps
	$(call section,bench-data: data path A direct / B nginx pair / W Weft sidecar pair)
	$(BIN)/weft-bench -bin $(BIN) -tools $(TOOLS) -run $(BENCH_RUN) -out $(BENCH_OUT) \
	  -gobench $(BENCH_RUN)/gobench.txt -command "make bench$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" $(BENCH_ARGS)

# Sidecar RSS against mesh size (issue 11 item 2): the real control plane on
# a generated registry of 10 / 1,000 / 10,000 Services and one real sidecar,
# allowlist reaching 5 Services and all of them. Bounded by -timeout (20m).
# The table goes to $(BENCH_RUN)/meshrss.md; BENCHMARKS.md quotes it by hand.
MESHRSS_ARGS ?= -services 10,1000,10000
bench-mem: build
	$(call section,bench-mem: sidecar RSS against mesh size (tests/bench/meshrss))
	@mkdir -p $(BENCH_RUN)
	$(BIN)/weft-meshrss -bin $(BIN) -run $(BENCH_RUN)/meshrss $(MESHRSS_ARGS) | tee $(BENCH_RUN)/meshrss.md

bench: bench-go bench-data bench-mem
	$(call section,bench: done; results in $(BENCH_OUT) and $(BENCH_RUN)/meshrss.md)

## ---------------------------------------------------------------- clean

clean:
	$(call section,clean)
	rm -rf $(BIN) $(ROOT)/.cache/bench
	@echo "kept $(TOOLS) (pinned tools); rm -rf .cache to drop them"

## ---------------------------------------------------------------- kubernetes test binaries

# etcd, kube-apiserver, kube-controller-manager and kubectl built from Go
# modules (versions pinned in hack/k8s/versions.env) into
# ${XDG_CACHE_HOME:-~/.cache}/weft/k8s-v<version>/bin; reused when present
# (~7 min cold, ~20 s with a warm GOCACHE, 0 s when built). tests/kubeharness
# finds them there, or in $WEFT_K8S_BIN; CI sets WEFT_REQUIRE_K8S=1 so the
# Kubernetes tests fail instead of skipping when they are missing.
.PHONY: k8s-bins
k8s-bins:
	$(call section,k8s-bins: Kubernetes test binaries (hack/k8s/build.sh))
	@$(ROOT)/hack/k8s/build.sh

## ---------------------------------------------------------------- helm chart and images (issue 10)

# helm (pinned) into ./.cache/tools/bin; `go install` from the module proxy
# (~70 s cold). tests/e2e/helm finds it there, or in $WEFT_HELM.
HELM_VERSION := v3.22.0
HELM         := $(TOOLS)/helm
IMAGES_DIR   := $(BIN)/images
STATIC_DIR   := $(BIN)/static
IMAGE_TAG    ?= dev
IMAGE_BINS   := ./control-plane/cmd/weft-control-plane ./control-plane/cmd/weftctl ./injector/cmd/weft-injector ./sidecar/cmd/weft-sidecar

.PHONY: helm-tools helm-generate helm-docs helm-check helm-test images

helm-tools: $(HELM)
$(HELM): FORCE
	@if ! [[ -x $@ ]] || ! $(GO) version -m $@ 2>/dev/null | grep -qE "mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$(HELM_VERSION)[[:space:]]"; then \
	  echo "installing helm $(HELM_VERSION) into $(TOOLS)"; \
	  GOBIN=$(TOOLS) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	fi

# The chart's CRDs are a copy of api/crds (helm packages symlinks poorly).
helm-generate:
	$(call section,helm-generate: api/crds -> charts/weft/files/crds; values README)
	@$(ROOT)/hack/helm/sync-crds.sh
	@$(MAKE) --no-print-directory helm-docs

helm-docs:
	@cd hack/helm/valuesdoc && GOWORK=off $(GO) run . -chart $(ROOT)/charts/weft
	@echo "wrote charts/weft/README.md"

helm-check:
	$(call section,helm-check: chart CRDs identical to api/crds; README current)
	@$(ROOT)/hack/helm/sync-crds.sh --check
	@cd hack/helm/valuesdoc && GOWORK=off $(GO) run . -chart $(ROOT)/charts/weft -check

# Image archives (docker-archive tarballs) without a Docker daemon:
# static binaries -> hack/images (go-containerregistry) -> bin/images/<name>.tar.
# weft-sidecar also gets a layer with the build host's Debian iptables (dpkg),
# for its init step; the build fails clearly when iptables is not installed.
images:
	$(call section,images: static binaries -> bin/images/*.tar (no daemon))
	@mkdir -p $(STATIC_DIR)
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(GO_TAGS)' -ldflags='-s -w' -o $(STATIC_DIR)/ $(IMAGE_BINS)
	@cd hack/images && GOWORK=off $(GO) run . -bin $(STATIC_DIR) -out $(IMAGES_DIR) -tag $(IMAGE_TAG)

# lint/template every ci/ values file, schema rejections, the image archives,
# and install/upgrade/uninstall on the harness's real API server.
helm-test: helm-tools helm-check images build
	$(call section,helm-test: tests/e2e/helm)
	WEFT_HELM=$(HELM) WEFT_IMAGES_DIR=$(IMAGES_DIR) WEFT_BIN_DIR=$(BIN) \
	  $(GO) test -count=1 -timeout $(E2E_TIMEOUT) $(GOTESTFLAGS) github.com/weftmesh/weft/tests/e2e/helm

## ---------------------------------------------------------------- control-plane scale (issue 11 item 3)

# weft-xdssim: simulated sidecars (real ADS streams, SotW then delta, join
# tokens, verified TLS) against the real weft-control-plane fed by a
# generated file registry (1,000 Services, 10,000 endpoints); bounded by
# XDSSIM_ARGS' -timeout (30m default). SCALE is the number of proxies
# (make bench-xds SCALE=5000 for the issue 11 target). Figures go to
# BENCHMARKS.md by hand (section "Control plane at scale"); the control
# plane's heap and CPU profiles to .cache/bench/xdssim-profiles/<mode>/.
SCALE ?= 1000
XDSSIM_ARGS ?= -services 1000 -endpoints-per-service 10 -reach 2 -proxies $(SCALE) -changes 5 -churn-rate 50 -churn-for 60s
.PHONY: bench-xds
bench-xds:
	$(call section,bench-xds: control plane at scale (tests/bench/xdssim))
	@mkdir -p $(BIN) $(ROOT)/.cache/bench
	$(GO) build -trimpath -o $(BIN)/ ./control-plane/cmd/weft-control-plane ./tests/bench/cmd/weft-xdssim
	$(BIN)/weft-xdssim -bin $(BIN) -run $(ROOT)/.cache/bench/xdssim -profile-dir $(ROOT)/.cache/bench/xdssim-profiles -v $(XDSSIM_ARGS) | tee $(ROOT)/.cache/bench/xdssim.txt

## ---------------------------------------------------------------- injector admission latency (issue 11 item 4)

# BenchmarkAdmission: the real webhook server over TLS on a random loopback
# address, bursts of Deployment-pod CREATE AdmissionReviews (100 reviews one
# at a time, 100 by 10 workers, 500 by 50 workers), p50/p99 per review.
# Bounded: INJECTOR_BENCHTIME bursts of each. Figures go to BENCHMARKS.md by
# hand (section "Injector admission latency").
INJECTOR_BENCHTIME ?= 20x
.PHONY: bench-injector
bench-injector:
	$(call section,bench-injector: admission latency under bursts (injector/webhook))
	@mkdir -p $(ROOT)/.cache/bench
	$(GO) test -run '^$$' -bench BenchmarkAdmission -benchtime $(INJECTOR_BENCHTIME) -count=1 -timeout 10m ./injector/webhook | tee $(ROOT)/.cache/bench/injector.txt
