# The README's two commands: `make demo` and `make test`. Both create .venv on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN := torch==2.13.0

.PHONY: venv install install-dev demo test bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24,<27"

# torch first, as the CPU build that pip resolves for the pin (never the CUDA wheels).
$(VENV)/.torch: | $(PY)
	$(PIP) install "$(TORCH_PIN)"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(PIP) install -e ".[dev]"
	touch $@ $(VENV)/.installed

venv: $(PY)
install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Trains the default task (PPO on the HVAC simulator) with its preset, evaluates it on the
# test weeks next to the two rule-based baselines (tables), and plots it (PNG).
DEMO_ALGO ?= ppo
DEMO_ENV ?= smoothrl/HVAC-v0
DEMO_RUN ?= runs/demo
demo: install
	$(VENV)/bin/smoothrl train --algo $(DEMO_ALGO) --env $(DEMO_ENV) --run-dir $(DEMO_RUN) --overwrite
	$(VENV)/bin/smoothrl eval $(DEMO_RUN) --episodes 10
	$(VENV)/bin/smoothrl eval --controller thermostat --env $(DEMO_ENV) --episodes 10
	$(VENV)/bin/smoothrl eval --controller pi --env $(DEMO_ENV) --episodes 10
	$(VENV)/bin/smoothrl plot $(DEMO_RUN) --out $(DEMO_RUN)/demo.png

# Benchmarks: each script writes results/<name>.json and prints a table.
bench: install
	$(PY) scripts/bench_hvac.py

test: install-dev
	$(VENV)/bin/ruff check smoothrl tests scripts
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

lint: install-dev
	$(VENV)/bin/ruff check smoothrl tests scripts
	$(VENV)/bin/ruff format --check smoothrl tests scripts

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
