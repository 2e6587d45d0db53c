# CodeBeaker developer entry points. `make run` and `make test` set up a fresh
# machine by themselves (virtualenv, install, runtime images).
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

.PHONY: venv proto proto-check images readme run test test-unit lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Regenerate the Python stubs (messages, gRPC, typed .pyi) beside the .proto files.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I$(PROTO_DIR) \
		--python_out=$(PROTO_DIR) --grpc_python_out=$(PROTO_DIR) \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=$(PROTO_DIR) \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=$(PROTO_DIR) \
		$(PROTOS:$(PROTO_DIR)/%=%)

# Fails when the committed stubs differ from what the .proto files generate.
proto-check: proto
	git diff --exit-code -- $(PROTO_OUT) || \
		(echo "generated stubs are stale: run 'make proto' and commit" >&2; exit 1)

images: $(STAMP)
	$(BIN)/codebeaker images build

# Regenerate the README's language table from runtimes/languages/*/spec.toml.
readme: $(STAMP)
	$(BIN)/python -m tools.language_table README.md

run: $(STAMP) images
	$(BIN)/codebeaker serve --address $(ADDRESS) --metrics-address $(METRICS_ADDRESS) \
		--log-format console

test: $(STAMP) images
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

lint: $(STAMP) $(TYPECHECK)/codebeaker
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p codebeaker.server -p codebeaker.runtimes -p codebeaker.client
	$(BIN)/mypy tests bench tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	BUF=$(BIN)/buf scripts/buf-breaking.sh

# Speed against the bare interpreter, the raw engine and peers, in one run;
# then every language's hello world, cold and warm, against its own toolchain.
bench: $(STAMP) images
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.languages

clean:
	rm -rf $(VENV) $(TYPECHECK) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
