# orderpipe — build, test and run everything on this machine. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
ARCH  ?= arm64
PKGS  ?= ./...
FUNCTIONS := ingest dispatch redrive
# make test runs every package but the end-to-end one (test/) first, TEST_P at a time, then
# test/ alone: its tests mostly wait on the pipeline, so it runs several at once when it finds
# the CPUs spare as it starts (e2eParallel in test/), which it finds only with no other package
# beside it. The other packages mostly wait on moto too, so three run at once; they stretch
# their waits on a busy machine (awstest.Scale). TEST_P=1 runs them one at a time.
TEST_P ?= 3
E2E_PKG := github.com/orderpipe/orderpipe/test
TEST_TIMEOUT ?= 20m

export MOTO_PORT ?= 4566
export AWS_ENDPOINT_URL_TEST := http://127.0.0.1:$(MOTO_PORT)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Go, jsii and the CDK CLI write their scratch files here; created when make reads this file so
# that every target works on a fresh clone.
export TMPDIR := $(CURDIR)/.tmp
$(shell mkdir -p $(TMPDIR))
TOOLS_BIN := $(CURDIR)/tools/node_modules/.bin
export PATH := $(TOOLS_BIN):$(PATH)

# Every Go file of the tree, found without git (the pipeline's source has no .git): the build
# outputs, scratch and installed tools are pruned.
GOFMT_PRUNE := \( -path ./.git -o -path ./.tmp -o -path ./.moto -o -path ./build -o -path ./cdk.out -o -path ./tools/node_modules \) -prune -o

.PHONY: help test bench fuzz vet build demo synth tools moto-start moto-stop clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

tools: tools/node_modules/.installed ## install the pinned Node tools (CDK CLI, local-aws-sqs)
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

vet: ## go vet
	$(GO) vet $(PKGS)

test: tools ## vet and run every test against a local moto_server (started and stopped here)
	@scripts/moto.sh start && trap 'scripts/moto.sh stop' EXIT && \
	  $(GO) vet $(PKGS) && \
	  { unformatted=$$(gofmt -l $$(find . $(GOFMT_PRUNE) -name '*.go' -print)); [ -z "$$unformatted" ] || { echo "gofmt needed: $$unformatted" >&2; exit 1; }; } && \
	  pkgs=$$($(GO) list $(PKGS)) && rest=$$(grep -vx '$(E2E_PKG)' <<<"$$pkgs" || true) && \
	  { [ -z "$$rest" ] || AWS_ENDPOINT_URL=$(AWS_ENDPOINT_URL_TEST) $(GO) test -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) $$rest; } && \
	  { ! grep -qx '$(E2E_PKG)' <<<"$$pkgs" || AWS_ENDPOINT_URL=$(AWS_ENDPOINT_URL_TEST) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(E2E_PKG); }

bench: tools ## run the benchmarks (see docs/BENCHMARKS.md)
	@scripts/moto.sh start && trap 'scripts/moto.sh stop' EXIT && \
	  AWS_ENDPOINT_URL=$(AWS_ENDPOINT_URL_TEST) $(GO) test -p 1 -run '^$$' -bench . -benchmem -timeout 30m $(PKGS)

fuzz: ## fuzz the order reader for FUZZTIME (default 30s) per target
	$(GO) test ./pkg/order -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $${FUZZTIME:-30s}
	$(GO) test ./pkg/order -run '^$$' -fuzz '^FuzzReaderCSV$$' -fuzztime $${FUZZTIME:-30s}

build: $(FUNCTIONS:%=build/%/bootstrap) ## build the Lambda bootstraps for linux/$(ARCH)
build/%/bootstrap: FORCE
	@mkdir -p $(dir $@)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -tags lambda.norpc -ldflags='-s -w' -o $@ ./functions/$*
FORCE:

demo: ## run the whole pipeline here: moto, stand-in API, sample file, live ledger
	$(GO) run ./cmd/orderpipe demo

# cdk.json names no order API: a deploy must give apiBaseUrl. An offline synth without CDK_ARGS
# uses a reserved name that never resolves.
CDK_ARGS ?= -c apiBaseUrl=https://orders.invalid
synth: tools build ## cdk synth offline with the pinned CLI (context: CDK_ARGS="-c apiBaseUrl=https://... -c key=value ...")
	cdk synth --quiet $(CDK_ARGS)

moto-start: ## start moto_server on 127.0.0.1:$(MOTO_PORT) (kept running)
	@scripts/moto.sh start
moto-stop: ## stop the moto_server that moto-start began
	@scripts/moto.sh stop

clean:
	rm -rf build cdk.out .tmp .moto && mkdir -p .tmp
