# `make demo` and `make test` set everything up first (see scripts/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo chat test lint format

setup:
	VENV=$(VENV) bash scripts/setup.sh

demo: setup
	$(VENV)/bin/voxlm demo

chat: setup
	$(VENV)/bin/voxlm chat --cascade

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
