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

.PHONY: demo
demo: build services ## ingest and process the sample archive with the offline models, then show TL;DRs and related papers
	@export PAPERPIPE_DATA="$(DEMO_DATA)"; \
	echo "==> paperpipe ingest testdata/sample-papers.txt"; \
	$(BIN) ingest testdata/sample-papers.txt; \
	echo "==> paperpipe worker --exit-when-idle"; \
	$(BIN) worker --exit-when-idle; \
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
	echo "  OPENAI_API_KEY=... $(BIN) up      # real TL;DRs and embeddings (see README: OpenAI, Ollama, vLLM, llama.cpp)"

.PHONY: test
test: services ## install what the tests need, start the services, run every test with -race
	@export PAPERPIPE_TEST_DATABASE_URL="$$($(SERVICES) url test)"; \
	$(GO) vet ./... && \
	$(GO) test $(TESTFLAGS) $(PKG)

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

.PHONY: clean
clean: ## remove build output and demo data (not the database)
	rm -rf bin $(DEMO_DATA)
