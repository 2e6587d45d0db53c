# CodeBeaker developer entry points. `make run` and `make test` set up a fresh
# Debian machine by themselves: as root they install what is missing
# (python3-venv, the Docker engine, gVisor, the test tools), otherwise they
# stop with one sentence saying what to run; then the virtualenv, the install
# (exact versions from constraints.txt), the runtime images.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ADDRESS ?= 127.0.0.1:50051
METRICS_ADDRESS ?= 127.0.0.1:9464
PROTO_DIR := proto
PROTO_OUT := proto/codebeaker/v1
PROTOS := $(wildcard $(PROTO_OUT)/*.proto)
# The googleapis .proto files ours import (google.longrunning, google.rpc, google.api),
# as symlinks into the venv's googleapis-common-protos: never copied into the repository.
PROTO_DEPS := build/proto-deps

.PHONY: venv engine test-tools constraints proto proto-deps proto-check images readme run test \
	test-unit lint bench clean FORCE

venv: $(STAMP)

# A venv whose python is gone or cannot import pip is half-made (an interrupted
# `python3 -m venv`, Debian's python3 without python3-venv): its stamp must not
# count, so scripts/ensure-venv.sh rebuilds it before the install.
VENV_BROKEN := $(shell bash scripts/ensure-venv.sh --check $(VENV) || echo yes)

$(STAMP): pyproject.toml constraints.txt $(if $(VENV_BROKEN),FORCE)
	PYTHON='$(PYTHON)' bash scripts/ensure-venv.sh $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

FORCE:

# Pin what the venv has now (after changing a version in pyproject.toml).
constraints: $(STAMP)
	{ grep '^#' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^#'; } \
		> constraints.txt.new
	mv constraints.txt.new constraints.txt

# A Docker engine that answers; when none does, scripts/ensure-docker.sh
# installs and starts one (root), or says what to run.
engine:
	@docker info >/dev/null 2>&1 || bash scripts/ensure-docker.sh

# What the whole suite drives besides the engine: gVisor registered with it
# (every integration test also runs under runsc), Prometheus, docker-compose.
# Without root, missing test tools only skip their tests (not with CI=true).
test-tools:
	@bash scripts/ensure-docker.sh
	@if [ "$$(id -u)" -eq 0 ]; then bash scripts/ensure-test-tools.sh; \
	else bash scripts/ensure-test-tools.sh || echo "make test: the tests that need them will skip"; fi

proto-deps: $(STAMP)
	$(BIN)/python -m tools.proto_deps $(PROTO_DIR) $(PROTO_DEPS)

# Regenerate the Python stubs (messages, gRPC, typed .pyi) beside the .proto files.
proto: proto-deps
	$(BIN)/python -m grpc_tools.protoc -I$(PROTO_DIR) -I$(PROTO_DEPS) \
		--python_out=$(PROTO_DIR) --grpc_python_out=$(PROTO_DIR) \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=$(PROTO_DIR) \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=$(PROTO_DIR) \
		$(PROTOS:$(PROTO_DIR)/%=%)

# Fails when the committed stubs differ from what the .proto files generate.
proto-check: proto
	git diff --exit-code -- $(PROTO_OUT) || \
		(echo "generated stubs are stale: run 'make proto' and commit" >&2; exit 1)

images: $(STAMP) engine
	$(BIN)/codebeaker images build

# Regenerate the README's language table from runtimes/languages/*/spec.toml.
readme: $(STAMP)
	$(BIN)/python -m tools.language_table README.md

run: $(STAMP) images
	$(BIN)/codebeaker serve --address $(ADDRESS) --metrics-address $(METRICS_ADDRESS) \
		--log-format console

test: $(STAMP) test-tools images
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not docker"

# mypy cannot follow setuptools' editable import hook, so it reads the sources
# through a farm of symlinks laid out as the import names (codebeaker/...).
TYPECHECK := .typecheck
$(TYPECHECK)/codebeaker:
	mkdir -p $@
	ln -sfn ../../server $@/server
	ln -sfn ../../runtimes $@/runtimes
	ln -sfn ../../client $@/client
	ln -sfn ../../proto/codebeaker/v1 $@/v1

lint: $(STAMP) $(TYPECHECK)/codebeaker proto-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p codebeaker.server -p codebeaker.runtimes -p codebeaker.client
	$(BIN)/mypy tests bench tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/buf lint $(PROTO_DIR)
	$(BIN)/buf format $(PROTO_DIR) --diff --exit-code
	BUF=$(BIN)/buf PROTO_DEPS=$(PROTO_DEPS) scripts/buf-breaking.sh

# Speed against the bare interpreter, the raw engine and peers, in one run;
# then every language's hello world, cold and warm, against its own toolchain; then the
# queue (SubmitExecution + Operations) against Execute on the same server, embedded and Redis;
# then sessions (CreateSession, Exec, 100 idle ones, LOST) against the raw engine;
# then code cells (`1+1`, `import numpy`) against one-shot Executes on the same server;
# then request-time packages (an install, a cache hit) against Executes without any.
bench: $(STAMP) images
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.languages
	$(BIN)/python -m bench.operations
	$(BIN)/python -m bench.sessions
	$(BIN)/python -m bench.cells
	$(BIN)/python -m bench.packages

clean:
	rm -rf $(VENV) $(TYPECHECK) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
