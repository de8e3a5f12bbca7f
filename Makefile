# Gatehouse: the two commands a new machine needs are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)

SWIFT      ?= swift
BUILD_DIR  := .build/debug
STATE_DIR  ?= .gatehouse-demo
LISTEN     ?= 127.0.0.1:2222
WEB_LISTEN ?= 127.0.0.1:8080

.PHONY: deps build demo test unit e2e bench bench-hold bench-flood bench-backend bench-lockbox bench-lockbox-postgres bench-parser bench-transcripts bench-output bench-audit fuzz clean

deps:
	scripts/install-deps

build:
	$(SWIFT) build

## make demo: install system packages, build, run the gateway on the demo configuration, with the web
## console (approvals, review, activity API) on WEB_LISTEN (loopback HTTP; `make demo WEB_LISTEN=off` for none).
demo:
	scripts/install-deps --system
	$(SWIFT) build
	exec $(BUILD_DIR)/gatehoused --demo --state-dir $(STATE_DIR) --listen $(LISTEN) --web-listen $(WEB_LISTEN)

## make test: install what the suite needs, then run all of it (unit + end-to-end).
## The PostgreSQL store's tests use GATEHOUSE_TEST_POSTGRES_URL; when it is unset,
## a throwaway server is started for the run (scripts/test-postgres) and stopped
## at the end, even when a test fails.
test: deps
	$(SWIFT) build --build-tests
	@set -e; \
	if [ -z "$${GATEHOUSE_TEST_POSTGRES_URL:-}" ]; then \
	  export TEST_POSTGRES_DIR=$$(mktemp -d /tmp/gatehouse-test-postgres.XXXXXX); \
	  trap 'scripts/test-postgres stop' EXIT; \
	  GATEHOUSE_TEST_POSTGRES_URL=$$(scripts/test-postgres start); export GATEHOUSE_TEST_POSTGRES_URL; \
	fi; \
	$(SWIFT) test --skip-build --disable-swift-testing; \
	.venv/bin/python -m pytest -q Tests/e2e

unit:
	$(SWIFT) test

e2e: build
	.venv/bin/python -m pytest -q Tests/e2e

## make bench: Gatehouse (release build) and OpenSSH's sshd side by side on loopback, same login,
## same backends, same client; prints one table of figures and ratios (see docs/performance.md).
## QUICK=1: small counts and one repeat, a few minutes. Counts: BENCH_REPEATS, BENCH_MB, BENCH_SHELL,
## BENCH_EXEC, BENCH_LOGINS, BENCH_PARALLEL_LOGINS, BENCH_IDLE (see bench/run.py).
QUICK ?=
bench: deps
	scripts/bench-setup
	$(SWIFT) build -c release
	.venv/bin/python bench/run.py $(if $(QUICK),--quick)

## make bench-hold: how many idle authenticated sessions each server holds (BENCH_HOLD, default 10,000;
## stops early when the machine has less than BENCH_HOLD_RESERVE_MIB, default 4096, available), and
## whether a login still works then.
bench-hold: deps
	scripts/bench-setup
	$(SWIFT) build -c release
	.venv/bin/python bench/run.py --hold

## make bench-backend: start cost (CPU, wall) of the demo mailbox backend against /bin/true (perf stat).
bench-backend:
	$(SWIFT) build -c release --product gatehouse-demo-mailbox
	bench/backend_start.sh .build/release

## make bench-flood: a good client's login latency while one source floods the daemon with failing logins.
bench-flood: deps
	$(SWIFT) build -c release
	.venv/bin/python bench/auth_flood.py --build .build/release

## make bench-parser: median time of parse+bind+authorize per line (release build).
bench-parser:
	$(SWIFT) build -c release --product gatehouse-bench-parser
	.build/release/gatehouse-bench-parser policies

## make fuzz: libFuzzer over lexer, parser, binder and formatters for FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run $(FUZZ_SECONDS)

## make bench-lockbox: Lockbox.claim p50/p99 on SQLite with 100,000 historical requests (release build).
bench-lockbox:
	$(SWIFT) build -c release --product lockbox-claim-bench
	.build/release/lockbox-claim-bench 100000 50000

## make bench-lockbox-postgres: the same claim() measurement on the fleet's PostgreSQL store (a throwaway
## server from scripts/test-postgres unless GATEHOUSE_BENCH_POSTGRES_URL is set; release build).
bench-lockbox-postgres:
	$(SWIFT) build -c release --product lockbox-claim-bench
	@set -e; \
	if [ -z "$${GATEHOUSE_BENCH_POSTGRES_URL:-}" ]; then \
	  export TEST_POSTGRES_DIR=$$(mktemp -d /tmp/gatehouse-bench-postgres.XXXXXX); \
	  trap 'scripts/test-postgres stop' EXIT; \
	  GATEHOUSE_BENCH_POSTGRES_URL=$$(scripts/test-postgres start); export GATEHOUSE_BENCH_POSTGRES_URL; \
	fi; \
	.build/release/lockbox-claim-bench 100000 20000

## make bench-output: server CPU per byte for 100 MB of backend output, sanitised and recorded (release build).
bench-output:
	$(SWIFT) build -c release --product output-path-bench
	.build/release/output-path-bench 100000000

## make bench-audit: audit events/s and fdatasyncs per event with 1, 8 and 64 threads recording at once (release build).
bench-audit:
	$(SWIFT) build -c release --product audit-commit-bench
	.build/release/audit-commit-bench 200 1,8,64 .build

## make bench-transcripts: recording on vs off on a 100 MiB output stream; reviewer tools on a 400k-event log (issue 5).
bench-transcripts: deps
	$(SWIFT) build -c release
	.venv/bin/python bench/transcript_overhead.py --build .build/release
	.venv/bin/python bench/audit_search.py --build .build/release

clean:
	rm -rf .build .venv $(STATE_DIR)
