# Benchmarks (included from the top-level Makefile).
#   make bench       short profile of every scenario (a few minutes), table on stdout
#   make bench-full  medians of 3 runs, longer runs, and the SO_REUSEPORT scale run
#   make loadtest    k6 smoke profile (one minute), k6 installed locally when missing
# Every run writes to bench/out/ (ignored by git): latest-<profile>.json/.md,
# a timestamped JSON, charts and the servers' logs. "make bench-publish
# PROFILE=full" copies the latest results into bench/results/ (committed,
# quoted by docs/BENCHMARKS.md) and redraws the charts there.
BENCH_BIN    := $(CURDIR)/bin/bench
BENCH_OUT    ?= bench/out
BENCH_PUB    := bench/results
BENCH_ARGS   ?=
K6_VERSION   := v1.8.1
K6           := $(CURDIR)/.tools/bin/k6

.PHONY: bench bench-full bench-tools bench-pushpin bench-chart bench-publish loadtest k6

bench-tools:
	@mkdir -p $(BENCH_BIN)
	$(GO) build -trimpath -o $(BENCH_BIN)/ ./bench/cmd/sdbench ./bench/cmd/refecho ./bench/cmd/refbackend ./bench/cmd/benchrun ./bench/cmd/benchchart

# Pushpin is the peer a user would pick instead; Debian packages it.
bench-pushpin:
	@command -v pushpin >/dev/null 2>&1 || { \
	  echo "installing pushpin (Debian package) for the comparison"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pushpin >/dev/null; } \
	    || echo "pushpin not installable here: its rows will be skipped"; }

bench: build bench-tools bench-pushpin
	$(BENCH_BIN)/benchrun -profile short -relay bin/socketdock -tools $(BENCH_BIN) -out $(BENCH_OUT) $(BENCH_ARGS)
	$(BENCH_BIN)/benchchart -in $(BENCH_OUT)/latest-short.json -out $(BENCH_OUT)

bench-full: build bench-tools bench-pushpin
	$(BENCH_BIN)/benchrun -profile full -relay bin/socketdock -tools $(BENCH_BIN) -out $(BENCH_OUT) $(BENCH_ARGS)
	$(BENCH_BIN)/benchchart -in $(BENCH_OUT)/latest-full.json -out $(BENCH_OUT)

bench-chart: bench-tools
	$(BENCH_BIN)/benchchart -in $(BENCH_OUT)/latest-$${PROFILE:-short}.json -out $(BENCH_OUT)

bench-publish: bench-tools
	@mkdir -p $(BENCH_PUB)
	cp $(BENCH_OUT)/latest-$${PROFILE:-short}.json $(BENCH_OUT)/latest-$${PROFILE:-short}.md $(BENCH_PUB)/
	$(BENCH_BIN)/benchchart -in $(BENCH_PUB)/latest-$${PROFILE:-short}.json -out $(BENCH_PUB)

$(K6):
	GOBIN=$(CURDIR)/.tools/bin $(GO) install go.k6.io/k6@$(K6_VERSION)

k6: $(K6)

loadtest: build bench-tools $(K6)
	K6=$(K6) RELAY=$(CURDIR)/bin/socketdock BENCH_BIN=$(BENCH_BIN) bash loadtest/run.sh $${PROFILE:-smoke}
