# The README's two commands: `make demo` and `make test`. Both create .venv on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN := torch==2.13.0

.PHONY: venv install install-dev demo test docs bench lint clean

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

# dev: the test tools, the sweep extra (Ray, Optuna, rliable): the tests start a Ray cluster themselves,
# the docs extra (mkdocs-material, mkdocstrings): the site is built strictly as part of the tests, and the
# protocol extras (bacpypes3, cyclonedds): the tests deploy over BACnet/IP and ROS 2 against the bridges
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(PIP) install -e ".[dev,ray,docs,bacnet,ros2]"
	touch $@ $(VENV)/.installed

venv: $(PY)
install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The product's promise in one screen: PPO on the HVAC simulator (the preset's 500k steps), trained
# twice in parallel: plain, and with smoothrl's recipe: the oracle economic MPC distilled into the
# policy first (DAgger, 2 rounds of 4,096 decisions at this budget), then PPO fine-tuning with a
# small exploration std. Both are then evaluated on the 13 distinct test weeks beside the
# thermostat and PI tuned on the training weeks and the economic MPC (the oracle bound and the
# realistic one), in one table: each change against the plain run, the weeks each won against it,
# the gap to the oracle; and plotted with the oracle MPC's week (zone temperature, heat-pump
# signal, price, action spectrum). About 15 minutes on 2 cores after the install (8 of them the
# two MPCs' evaluation).
DEMO_ENV ?= smoothrl/HVAC-v0
DEMO_DIR ?= runs/demo
DEMO_RECIPE ?= --pretrain mpc-oracle --set pretrain.rounds=2 --set pretrain.steps=4096 \
	--set policy_kwargs.log_std_init=-2.5 --set learning_rate=1e-4
demo: install
	@mkdir -p $(DEMO_DIR)
	@echo "training plain PPO and the distilled recipe on $(DEMO_ENV) in parallel (the plain run's log: $(DEMO_DIR)/plain.log)"
	@OMP_NUM_THREADS=1 $(VENV)/bin/smoothrl train --algo ppo --env $(DEMO_ENV) --run-dir $(DEMO_DIR)/plain \
		--overwrite --no-progress > $(DEMO_DIR)/plain.log 2>&1 & plain=$$!; \
	OMP_NUM_THREADS=1 $(VENV)/bin/smoothrl train --algo ppo --env $(DEMO_ENV) --run-dir $(DEMO_DIR)/distilled \
		--overwrite $(DEMO_RECIPE); distilled=$$?; \
	wait $$plain || { cat $(DEMO_DIR)/plain.log; exit 1; }; test $$distilled -eq 0
	$(VENV)/bin/smoothrl eval $(DEMO_DIR)/plain $(DEMO_DIR)/distilled --baselines
	$(VENV)/bin/smoothrl plot $(DEMO_DIR)/plain $(DEMO_DIR)/distilled --controller mpc-oracle --out $(DEMO_DIR)/demo.png

# Benchmarks: each script writes results/<name>.json and prints a table.
bench: install
	$(PY) scripts/bench_hvac.py

test: install-dev docs
	$(VENV)/bin/ruff check smoothrl tests scripts
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

# The documentation site (mkdocs-material + mkdocstrings), built strictly: a broken link, a bad
# docstring or a page missing from the nav fails. The CLI reference is generated from the typer app.
docs: install-dev
	$(VENV)/bin/typer smoothrl.cli utils docs --name smoothrl --title "CLI reference" --output docs/reference/cli.md
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

lint: install-dev
	$(VENV)/bin/ruff check smoothrl tests scripts
	$(VENV)/bin/ruff format --check smoothrl tests scripts

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
