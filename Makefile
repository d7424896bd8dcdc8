# The two commands a new user needs:
#   make demo   - run the auditor end to end locally against moto
#   make test   - run every test (what .ci/run calls)
.PHONY: demo test bootstrap build fuzz soak fault-soak deploy-check bench bench-event bench-share bench-sweep bench-org bench-org-2000 sim-org sam-build

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/python scripts/demo.py

# scripts/test.sh runs the bootstrap itself, beside the Rust build.
test:
	scripts/test.sh

build:
	cargo build --release

# Fuzz each parser for FUZZ_SECONDS (default 60); crash inputs go to fuzz/regressions/.
fuzz:
	scripts/fuzz.sh

# Long runs through cargo lambda watch: 2,000 invocations back to back, 200 at once.
soak: bootstrap
	.venv/bin/python scripts/soak.py --sequential 2000 --concurrent 200

# The cargo-lambda deploy path's build and start-up check (docs/deploy.md);
# about 7 minutes cold, so not part of `make test`.
deploy-check: bootstrap
	scripts/deploy-check.sh

# The random-fault org sweep (docs/reliability.md) over FAULT_SEEDS seeds
# (default 1..20); the test command runs one seed.
FAULT_SEEDS ?= $(shell seq 1 20)
fault-soak: bootstrap
	@for seed in $(FAULT_SEEDS); do \
	  echo "==> FAULT_SEED=$$seed"; \
	  FAULT_SEED=$$seed REPLICA_AUDITOR_PYTHON=$(CURDIR)/.venv/bin/python \
	    cargo test --quiet --test org_sweep random_ || exit 1; \
	done

# Replica Auditor against Cloud Custodian through a latency proxy, every
# figure of the README's Performance section (about 30 min; not part of test).
bench: bootstrap
	scripts/bench.sh

# Figures 1, 4, 5 and 6 of `make bench` alone (one CloudTrail event: round
# trips, calls, cold start, RSS, size), without Cloud Custodian: about a minute.
bench-event: bootstrap
	scripts/bench.sh --event-only

# Figures 2b, 7 and 8 of `make bench` alone: the cheapest Custodian policy,
# both tools at their Lambda CPU share (cgroup v1, needs root), the cold path
# over TLS. BENCH_SIZES=300,1000 by default.
bench-share: bootstrap
	scripts/bench.sh --lambda-share

# Measure the sweep at several SWEEP_CONCURRENCY values (20 ms per AWS call).
bench-sweep: bootstrap
	REPLICA_AUDITOR_PYTHON=$(CURDIR)/.venv/bin/python cargo test --release --test sweep -- --ignored --nocapture sweep_concurrency_benchmark

# Figure 3b of `make bench` alone: the org sweep against c7n-org (20 accounts x
# 2 Regions x 100 secrets, 100 ms per call, BENCH_ORG_WORKERS=4), merged into
# bench/results.md; then (unless SCALING=0) the in-process consumer-scaling
# table at 1, 4 and 16 consumers (CONSUMERS=...) into bench/results-org.md.
bench-org: bootstrap
	scripts/bench-org.sh

# The org sweep at 2,000 accounts x 3 Regions x 2 primaries, 16 consumers,
# 50 ms a call (its section of bench/results-org.md; seeding about 5 minutes,
# the sweep about an hour on this loaded 2-core machine). Not part of `make test`.
bench-org-2000: bootstrap
	FIGURE=0 TARGET=bench-org-2000 CONSUMERS=16 ACCOUNTS=2000 SECRETS=2 LIMIT_S=10800 scripts/bench-org.sh

# The org sweep at full scale, simulated (tests/sim_org.rs): 10,000 accounts x
# 17 Regions through the real planning and bookkeeping code against an
# in-memory table and queue with seeded faults; its figures appended to
# bench/sim-org.md. SIM_ORG_ACCOUNTS, SIM_ORG_SEED, SIM_ORG_CONCURRENCY.
sim-org:
	CARGO_INCREMENTAL=0 SIM_ORG_REPORT=$(CURDIR)/bench/sim-org.md \
	  cargo test --test sim_org -- --ignored --nocapture full_scale

# sam build of the x86_64 variant (the only target this machine can build); prints the bootstrap it made.
sam-build: bootstrap
	PATH="$(CURDIR)/.venv/bin:$$PATH" SAM_CLI_TELEMETRY=0 .venv/bin/sam build --parameter-overrides Architecture=x86_64
	ls -l .aws-sam/build/AuditorFunction/bootstrap
