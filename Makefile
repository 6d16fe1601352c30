# Every target creates (or reuses) the environment in .venv/ first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.isstad-installed
export HF_HUB_OFFLINE := 1

.PHONY: venv demo test lint type docs ci

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "isstad-plugin needs Python 3.11 or newer (the pinned numpy, kornia, pillow need it): make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -e '.[test,export,docs,lint,imagenet]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/isstad demo

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

type: venv
	$(BIN)/mypy src

docs: venv
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
