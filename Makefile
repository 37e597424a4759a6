# twtop — make (build), make test (everything CI runs), make help.
#
# `make test` installs what its tests need when it is missing (Debian
# packages through apt, kernel images cached under build/) and runs: the
# lint checks, the check that the committed bpf2go output is current, the
# unit and privileged tests on this machine's kernel, a short round of the
# overhead benchmark (fails on lost events), the tracer's tests again with
# the older kernels' fallbacks forced, and the same privileged tests inside
# Debian's 5.10, 6.1 and 6.12 kernels under qemu (see VM_RUNS).

GO          ?= go
BUILD       := build
VM_KERNELS  ?= 5.10 6.1 6.12
# The VM matrix: KERNEL:TIER[:FALLBACKS] (TWTOP_FALLBACK, see twtop
# --help). Every tier runs on 5.10, the oldest kernel here, and there the
# fallbacks for kernels older still are forced: the kprobe tier as 5.4 or
# RHEL 8 would run it (perf buffers, classic tracepoints, sock_diag, BTF
# from a file) and the tracepoint tier on perf buffers and classic
# tracepoints. 6.1 and 6.12 run the exact tiers (their programs differ:
# tcp_timewait_state_process has 3, 4 or 5 arguments, the death row is a
# pointer from 6.0) and 6.12 the tracepoint tier, which the host's 6.18
# also runs; the host covers the ring buffer path of classic tracepoints
# and sock_diag, with the shared ring buffer (test-fallbacks). Runs whose
# kernel is not in VM_KERNELS are left out.
VM_RUNS     ?= 5.10:fentry 5.10:kprobe 5.10:tracepoint \
               5.10:kprobe:perf-buffer,no-kernel-btf,old-helpers \
               5.10:tracepoint:perf-buffer,classic-tracepoints,sock-diag \
               6.1:fentry 6.1:kprobe 6.12:fentry 6.12:kprobe 6.12:tracepoint
# Fallbacks forced on the host's kernel by test-fallbacks.
HOST_FALLBACKS ?= classic-tracepoints,sock-diag,shared-ring perf-buffer
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GENERATED   := tracer/twtop_x86_bpfel.go tracer/twtop_x86_bpfel.o

# Debian packages per purpose, installed on demand by `make deps-*`.
PKGS_GENERATE := clang llvm libbpf-dev
PKGS_VM       := qemu-system-x86 busybox-static cpio
PKGS_TEST     := tmux

VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)
FUZZTIME    ?= 20s

.PHONY: all bench bench-check bench-overhead bench-short build fuzz generate check-generated lint recordings test test-host test-fallbacks test-deploy test-vm deps-generate deps-test deps-vm help clean

all: build

build: ## build ./twtop (needs only Go)
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o twtop ./cmd/twtop

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

generate: deps-generate ## recompile bpf/ with clang and regenerate tracer/twtop_x86_bpfel.{go,o}
	$(GO) generate ./tracer

check-generated: generate ## fail when the committed bpf2go output differs from a fresh build
	@git diff --quiet --exit-code -- $(GENERATED) || { \
	  echo "check-generated: $(GENERATED) are stale: run 'make generate' and commit the result" >&2; \
	  git diff --stat -- $(GENERATED) >&2; exit 1; }
	@echo "check-generated: committed bpf2go output is current"

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: ## benchmarks that print figures (no timings are asserted)
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-check: ## every benchmark once, so that the checks they make of their own results run
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

bench-overhead: ## churn with no tracer, empty hooks, the record floor, twtop --record, the twtop UI and bpftrace, alternating; prints the table (root)
	$(GO) build -o $(BUILD)/twtop-bench ./cmd/twtop
	$(GO) run ./test/bench -twtop $(BUILD)/twtop-bench

# The regression check of `make test`: one short round of the overhead
# benchmark, failing on lost events and on transitions the kernel's
# recursion guard kept from twtop above 1 in 10,000 (a softirq on a CPU
# running on_state skips it now and then; more means a program re-enters
# its hook or runs too long), never on timings. It needs root;
# without root it is skipped, except under CI=true where it fails.
bench-short: ## one 2 s round of bench-overhead without bpftrace; fails if twtop lost events or missed more than 1 in 10,000 transitions to the recursion guard (root)
	@if [ "$$(id -u)" != 0 ]; then \
	  if [ "$$CI" = true ]; then echo "bench-short: needs root (CI=true)" >&2; exit 1; fi; \
	  echo "bench-short: skipped, needs root (network namespaces, BPF)"; exit 0; fi; \
	mkdir -p $(BUILD) && $(GO) build -o $(BUILD)/twtop-bench ./cmd/twtop && \
	$(GO) run ./test/bench -twtop $(BUILD)/twtop-bench -short -no-peer

fuzz: ## fuzz the recording reader for FUZZTIME (corpus in tracer/record/testdata/fuzz)
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./tracer/record/

recordings: build ## re-record testdata/*.twrec from real workloads in network namespaces (root)
	$(GO) run ./test/recordings -twtop ./twtop -out testdata

test-host: deps-test ## all Go tests on this machine's kernel (privileged ones need root)
	$(GO) test -count=1 -timeout 20m ./...

test-fallbacks: ## the tracer's tests on this kernel with older kernels' ways forced (HOST_FALLBACKS; root)
	@set -e; for f in $(HOST_FALLBACKS); do \
	  echo "=== host kernel, fallbacks $$f"; \
	  TWTOP_FALLBACK=$$f $(GO) test -count=1 -timeout 20m ./tracer/ ; \
	done

# deploy/kubernetes is a module of its own, so that the Kubernetes and
# Prometheus packages its checks use stay out of twtop's build.
test-deploy: ## the Kubernetes manifests: strict decoding, least privilege, alerts' PromQL and metric names, capabilities (root)
	cd deploy/kubernetes && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./... && $(GO) test -count=1 -timeout 10m ./...

# In the VMs, auto must pick fentry: every kernel of the matrix supports it.
test-vm: deps-vm ## the tracer's privileged tests in qemu: the runs of VM_RUNS on the kernels of VM_KERNELS
	@mkdir -p $(BUILD)
	@for k in $(VM_KERNELS); do test/vm/kernels.sh --dir $(BUILD)/kernels $$k || exit 1; done
	CGO_ENABLED=0 $(GO) test -c -o $(BUILD)/tracer.test ./tracer/
	@set -e; cd tracer; for run in $(VM_RUNS); do \
	  k=$${run%%:*}; rest=$${run#*:}; t=$${rest%%:*}; f=; \
	  case $$rest in *:*) f=$${rest#*:} ;; esac; \
	  case " $(VM_KERNELS) " in *" $$k "*) ;; *) continue ;; esac; \
	  echo "=== kernel $$k, tier $$t$${f:+, fallbacks $$f}"; \
	  TWTOP_TIER=$$t TWTOP_FALLBACK=$$f TWTOP_EXPECT_TIER=fentry \
	    ../test/vm/exec.sh --kernel $$k --kernel-dir $(CURDIR)/$(BUILD)/kernels \
	    $(CURDIR)/$(BUILD)/tracer.test -test.count=1 -test.timeout 30m \
	    || { echo "test-vm: FAIL on kernel $$k, tier $$t$${f:+, fallbacks $$f}" >&2; exit 1; }; \
	done

test: lint check-generated test-host test-fallbacks test-deploy fuzz bench-check bench-short test-vm ## everything: what CI runs

deps-generate:
	@$(call need,$(PKGS_GENERATE),clang llvm-strip /usr/include/bpf/bpf_helpers.h)

deps-test:
	@$(call need,$(PKGS_TEST),tmux)

deps-vm:
	@$(call need,$(PKGS_VM),qemu-system-x86_64 /bin/busybox cpio)

clean:
	rm -rf $(BUILD) twtop

# need PACKAGES,COMMANDS-OR-FILES: install PACKAGES with apt when any is missing.
define need
missing=""; for c in $(2); do case $$c in /*) [ -e $$c ] ;; *) command -v $$c >/dev/null ;; esac || missing="$$missing $$c"; done; \
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing — install with: sudo apt-get install $(1)" >&2; exit 1; fi; \
  echo "installing $(1) (missing:$$missing)" >&2; \
  export DEBIAN_FRONTEND=noninteractive; \
  apt-get install -y -qq --no-install-recommends $(1) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(1) >/dev/null; }; \
fi
endef
