# Quick start: `make demo` runs the demo, `make test` runs the tests (CI runs `make test` too).
# Both create .venv on first use, or use the virtual environment that is already active.
PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.brats3d-installed

.PHONY: install demo test lint bench

install: $(STAMP)

# --system-site-packages and the torch check keep a CUDA torch that is already installed; only where no torch
# is importable do we install the CPU build (torch==2.13.0) before the package, so pip never pulls CUDA wheels.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/brats3d demo --out demo_output

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check brats3d tests benchmarks
	$(BIN)/ruff format --check brats3d tests benchmarks
