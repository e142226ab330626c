# paperpipe — `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin/paperpipe
SERVICES := deploy/services.sh
# Where the demo keeps its embedded NATS data (the database is the one `make services` runs).
DEMO_DATA ?= $(CURDIR)/.paperpipe-demo
# Test packages; override to run a subset: make test PKG=./store/...
PKG      ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 15m
# Benchmark set: quick (under 5 minutes) or full (1M vectors; long). make bench BENCH=full
BENCH    ?= quick
BENCHFLAGS ?=

export GOFLAGS := -buildvcs=false

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-15s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/paperpipe and bin/openai-fake
	$(GO) build -trimpath -o $(BIN) ./cmd/paperpipe
	$(GO) build -trimpath -o bin/openai-fake ./cmd/openai-fake

.PHONY: services
services: ## start PostgreSQL + pgvector (idempotent) and print its DATABASE_URL
	@$(SERVICES) up

.PHONY: services-down
services-down: ## stop the local PostgreSQL, keeping its data
	@$(SERVICES) down

# With a DATABASE_URL of your own, the demo uses that database: the local one is then neither
# started nor printed (its URL would name a database the demo does not use). It runs on the
# offline models whatever the environment says: an OPENAI_API_KEY, OPENAI_BASE_URL or model
# setting in the user's shell must not send the sample to a paid API.
.PHONY: demo
demo: build ## ingest and process the sample archive with the offline models (whatever OPENAI_API_KEY says), fit the offline embedder, then show TL;DRs and related papers
	@if [ -n "$${DATABASE_URL:-}" ]; then echo "==> database: DATABASE_URL from the environment"; else $(SERVICES) up; fi
	@unset OPENAI_API_KEY OPENAI_BASE_URL; export PAPERPIPE_CHAT_MODEL=offline PAPERPIPE_EMBED_MODEL=offline; \
	export PAPERPIPE_DATA="$(DEMO_DATA)"; \
	if [ -z "$${DATABASE_URL:-}" ]; then export DATABASE_URL="$$($(SERVICES) url)"; fi; \
	echo "==> paperpipe ingest testdata/sample-papers.txt"; \
	$(BIN) ingest testdata/sample-papers.txt; \
	echo "==> paperpipe worker --exit-when-idle"; \
	$(BIN) worker --exit-when-idle; \
	echo "==> paperpipe fit   # fit the offline embedder on the archive, embed every paper with it, activate it"; \
	$(BIN) fit; \
	echo "==> paperpipe status"; \
	$(BIN) status; \
	for q in "Implementing Load Balancing Loss" "Branch-Train-Merge" "Transductive Few-Shot Learning"; do \
	  echo; echo "==> paperpipe show \"$$q\""; $(BIN) show "$$q"; \
	  echo; echo "==> paperpipe related \"$$q\" -k 5"; $(BIN) related "$$q" -k 5; \
	done; \
	echo; echo "Go further:"; \
	echo "  $(BIN) list                       # every TL;DR, newest first"; \
	echo "  $(BIN) search \"mixture of experts routing\" -k 5"; \
	echo "  $(BIN) related \"Stacking Your Transformers\" --json"; \
	echo "  $(BIN) up                         # NATS + workers in one process; ingest from another terminal"; \
	echo "  OPENAI_API_KEY=... $(BIN) up      # real TL;DRs and embeddings, into a new space (see README: OpenAI, Ollama, vLLM, llama.cpp)"; \
	echo "  OPENAI_API_KEY=... $(BIN) reprocess --embed-only && $(BIN) activate text-embedding-3-small"; \
	echo "                                           # fill that space with the archive, then switch queries to it"

.PHONY: test
test: services ## install what the tests need, start the services, run every test with -race
	@deploy/test-deps.sh
	@export PAPERPIPE_TEST_DATABASE_URL="$$($(SERVICES) url test)"; \
	$(GO) vet ./... && \
	$(GO) test $(TESTFLAGS) $(PKG)

# Where `make chaos` keeps the output of its last run.
CHAOS_LOG ?= bin/chaos.log

.PHONY: chaos
chaos: services ## chaos runs, 2,000 abstracts each: kill -9 a worker, restart NATS, restart PostgreSQL, a faulty API
	@mkdir -p $(dir $(CHAOS_LOG))
	@export PAPERPIPE_TEST_DATABASE_URL="$$($(SERVICES) url test)"; \
	if PAPERPIPE_CHAOS=full $(GO) test -count=1 -timeout 90m -run 'TestChaosFull' -v ./chaos 2>&1 | tee $(CHAOS_LOG); \
	then status=0; else status=$$?; fi; echo; echo "chaos runs (full output in $(CHAOS_LOG)):"; \
	grep -E '^[a-z-]+ +in=' $(CHAOS_LOG) || true; exit $$status

.PHONY: bench
bench: services ## run the benchmarks (BENCH=quick, under 5 min; BENCH=full, 1M vectors) into bench/results/
	$(GO) build -trimpath -o bin/openai-fake ./cmd/openai-fake
	$(GO) build -trimpath -o bin/paperbench ./bench/cmd/paperbench
	bin/paperbench -set $(BENCH) -db "$$($(SERVICES) url test)" -fake bin/openai-fake -out bench/results $(BENCHFLAGS)

# staticcheck comes from the Go module proxy at this version (built once, then cached).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOIMPORTS ?= golang.org/x/tools/cmd/goimports@v0.53.0

.PHONY: lint
lint: ## gofmt, goimports (the standard library's imports in a group of their own), go vet and staticcheck
	@files="$$(gofmt -l .)"; test -z "$$files" || { echo "not gofmt-formatted (gofmt -w them):"; echo "$$files"; exit 1; }
	@files="$$($(GO) run $(GOIMPORTS) -l .)"; test -z "$$files" || { echo "imports not grouped as goimports has them ($(GO) run $(GOIMPORTS) -w them):"; echo "$$files"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: clean
clean: ## remove build output and demo data (not the database)
	rm -rf bin $(DEMO_DATA)
