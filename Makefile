# SocketDock: `make run` starts the relay on its loopback backend, `make test` runs every check.
GO        ?= go
BIN       := bin
TOOLS     := $(CURDIR)/.tools
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
STATICCHECK := $(TOOLS)/bin/staticcheck
NODE_DIR  := test/node

.PHONY: all build run test lint unit e2e-node js-client node-deps fuzz clean cluster-demo image

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/socketdock ./cmd/socketdock

run: build
	./$(BIN)/socketdock --log-format console

test: lint node-deps unit e2e-node js-client

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(TOOLS)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# Real peers we did not write: wscat and Node's ws, installed locally from package-lock.json
# (before unit: the Go e2e tests run Node's ws as an upstream).
node-deps:
	@command -v npm >/dev/null || { apt-get update && apt-get install -y nodejs npm; }
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error

e2e-node: build node-deps
	bash test/wscat_demo.sh $(BIN)/socketdock
	node $(NODE_DIR)/ws_client.mjs $(BIN)/socketdock

# The browser client's own suite, against its CONTRACT §8 test double (test/e2e drives it
# against the real relay in Chromium). Node 20 needs the flag for its WebSocket.
js-client:
	@command -v node >/dev/null || { apt-get update && apt-get install -y nodejs npm; }
	cd clients/js && node --experimental-websocket --test test/

fuzz:
	@for t in FuzzDecoder FuzzParseRequest FuzzUTF8; do \
	  $(GO) test ./pkg/wsframe -run '^$$' -fuzz "^$$t$$" -fuzztime $${FUZZTIME:-60s} || exit 1; done
	$(GO) test ./pkg/backend -run '^$$' -fuzz '^FuzzEncodeMessage$$' -fuzztime $${FUZZTIME:-60s}
	$(GO) test ./pkg/control -run '^$$' -fuzz '^FuzzRouting$$' -fuzztime $${FUZZTIME:-60s}
	$(GO) test ./pkg/cluster -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-60s}
	$(GO) test ./internal/jsonstr -run '^$$' -fuzz '^FuzzAppend$$' -fuzztime $${FUZZTIME:-60s}
	@for t in FuzzParams FuzzCallback FuzzBase64 FuzzSession; do \
	  $(GO) test ./pkg/longpoll -run '^$$' -fuzz "^$$t$$" -fuzztime $${FUZZTIME:-60s} || exit 1; done

# The container image (Dockerfile): a static binary built here, copied onto scratch.
IMAGE ?= socketdock:$(VERSION)
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/socketdock-static ./cmd/socketdock
	@engine=$$(command -v podman || command -v docker) || { echo "make image needs podman (apt-get install podman) or docker" >&2; exit 1; }; \
	  $$engine build -t $(IMAGE) -t socketdock:latest .

# NATS, three instances joined over it, and HAProxy in front (docs/SCALING.md).
cluster-demo:
	BIN=$(BIN) bash configs/cluster-demo.sh

clean:
	rm -rf $(BIN) $(TOOLS)

-include bench/bench.mk
-include soak/soak.mk
