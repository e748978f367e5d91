# make soak: the built relay, in its own process, under churn and backend faults; every message
# reconciled at the end and the relay's memory sampled throughout (soak/soak_test.go).
# SOAK_DURATION=10m by default; CI runs SOAK_DURATION=60s. SOAK_CSV=file writes the samples.
# SOAK_RELAY_ARGS adds relay flags, e.g. SOAK_RELAY_ARGS='--memory-limit 64MiB'. After the load:
# a churn burst (SOAK_BURST=15s, 0: none), then the relay alone (SOAK_SETTLE=45s). Samples every
# SOAK_SAMPLE=5s. SOAK_POLL_CLIENTS of the SOAK_CLIENTS are long-poll sessions (default: a quarter).
SOAK_DURATION ?= 10m
SOAK_CLIENTS  ?= 40
SOAK_POLL_CLIENTS ?=
SOAK_TIMEOUT  ?= 30m
SOAK_CSV      ?=

.PHONY: soak
soak: build
	SOAK_RELAY_BIN=$(CURDIR)/$(BIN)/socketdock SOAK_CSV=$(if $(SOAK_CSV),$(abspath $(SOAK_CSV))) \
	SOAK_DURATION=$(SOAK_DURATION) SOAK_CLIENTS=$(SOAK_CLIENTS) SOAK_POLL_CLIENTS=$(SOAK_POLL_CLIENTS) \
	  $(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' ./soak
