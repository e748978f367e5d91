# make soak: the relay under churn and backend faults, reconciled message by message at the end
# (soak/soak_test.go). SOAK_DURATION=10m by default; CI runs SOAK_DURATION=60s.
SOAK_DURATION ?= 10m
SOAK_CLIENTS  ?= 40
SOAK_TIMEOUT  ?= 30m

.PHONY: soak
soak:
	SOAK_DURATION=$(SOAK_DURATION) SOAK_CLIENTS=$(SOAK_CLIENTS) $(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' ./soak
