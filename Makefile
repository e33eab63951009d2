# Set-up-and-go targets. Each creates .venv if needed and installs what it needs into it.
#   make train   install the package and run the default training job (python train.py)
#   make test    install the package with every extra and run the test suite (what CI runs)
#   make lint    ruff check and format check
# TORCH pins the torch build that is installed first; override it for a CUDA build elsewhere,
# e.g. `make train TORCH=torch`.

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
ARGS   ?=
PYTEST_ARGS ?= -m "not slow"

.PHONY: train test test-slow lint bench install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, so that no extra pulls a different (multi-GB CUDA) build where none is wanted
install: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,atari,popgym,sb3,procgen,video,minigrid,mujoco,compare,suite,tune]"

train: install
	$(BIN)/python train.py $(ARGS)

# pytest exits 5 when it collects nothing: that is a failure here, never a pass
test: install-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-slow: PYTEST_ARGS = -m slow
test-slow: test

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m benchmarks.rules
