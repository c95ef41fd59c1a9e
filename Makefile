# The house's entry points. `make demo` and `make test` work on a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PRESET ?= quick

.PHONY: setup web browser demo demo-engine demo-check test lint bench study schedule tune clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed web  ## install the project and build the dashboard

web:  ## build the dashboard's assets (npm registry only, no CDN at run time)
	@if [ -f web/package.json ]; then \
	  cd web && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund) && npm run build; \
	fi

browser:  ## Debian's Chromium for the browser tests (Playwright's own download fails offline)
	@command -v /usr/bin/chromium >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

demo: setup  ## benchmark, teacher, distilled student, result table; then the platform with it
	$(BIN)/distillery demo --preset $(PRESET) --out runs/demo-$(PRESET)
	$(BIN)/distillery serve --demo

demo-engine: setup  ## only the engine part of `demo`: prints the result table and stops
	$(BIN)/distillery demo --preset $(PRESET) --out runs/demo-$(PRESET)

demo-check: setup  ## the quick demo on seeds 0, 1, 2; fails unless each orders teacher > HKD > no KD
	$(BIN)/distillery demo --preset quick --seeds 0 1 2 --check-order --quiet --out runs/demo-check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: setup browser  ## lint, import contracts, mypy and the whole default test suite
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

bench: setup  ## every benchmark in its quick mode; each prints its figures and the machine
	$(BIN)/python -m bench.train_step --quick
	$(BIN)/python -m bench.inference --quick
	$(BIN)/python -m bench.data_loader --quick
	$(BIN)/python -m bench.api_load --quick

study: setup  ## the accuracy study at CPU scale (about 3 h on 2 cores); writes docs/results.md
	$(BIN)/python -m bench.study --scale cpu --out runs/study-cpu --threads 1 --workers 2

schedule: setup  ## no KD and HKD at 4 and 12 student epochs and a fine-tune stage, on val (3 seeds)
	$(BIN)/python -m bench.study --scale cpu --out runs/study-cpu --no-voc --schedule --student-epochs 4 --tuning-seeds 0 1 2 --threads 1 --workers 2 --report docs/schedule.md

tune: setup  ## candidate changes to HKD scored on val (after `make study` trained the teachers)
	$(BIN)/python -m bench.study --scale cpu --out runs/study-cpu --threads 1 --workers 2 --tune

clean:
	rm -rf $(VENV) web/node_modules web/dist .distillery
