# The two commands of the README: `make demo` and `make test`.
# Both create .venv if needed and install torch 2.13.0 (the CPU build) before anything else.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.medden-installed
DEV_STAMP := $(VENV)/.medden-dev-installed

.PHONY: demo test test-slow benchmark lint install install-dev wheel clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[baselines]'
	touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[baselines,dev]'
	touch $@

install: $(STAMP)

install-dev: $(DEV_STAMP)

demo: $(STAMP)
	$(VENV)/bin/medden demo --out demo_output

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check medden tests benchmarks bundles notebooks conftest.py
	$(VENV)/bin/ruff format --check medden tests benchmarks bundles notebooks conftest.py
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest -q

benchmark: $(DEV_STAMP)
	$(PY) benchmarks/suite.py

test-slow: $(DEV_STAMP)
	$(PY) -m pytest -q -m slow

# dist/medden-<version>-py3-none-any.whl, with the trained bundles as package data (setup.py)
wheel: $(PY)
	$(PIP) wheel --quiet --no-deps -w dist .

clean:
	rm -rf $(VENV) demo_output build dist *.egg-info
