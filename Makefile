# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv (if missing) and installs what it needs into it; `make test` also
# creates the .venv-compat-* venvs of the SDK matrix.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck docs pytest compat compat-lowest compat-newest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/promptcache demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

pytest: $(STAMP)
	$(BIN)/pytest -q

# The SDK compatibility matrix (.ci/compat.py): the compatibility tests once against the lowest
# openai/anthropic/httpx2 that pyproject.toml allows and once against the newest released, each
# in its own venv, re-resolved only when pyproject.toml or the script changes (a fresh clone, as
# in CI, always gets the newest; `make clean` refreshes a local one).
COMPAT_STAMPS := .venv-compat-lowest/.installed .venv-compat-newest/.installed
.SECONDARY: $(COMPAT_STAMPS)

.venv-compat-%/.installed: pyproject.toml .ci/compat.py
	test -x $(@D)/bin/python || $(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet --upgrade pip
	pins="$$($(PYTHON) .ci/compat.py pins $*)" && \
		$(@D)/bin/python -m pip install --quiet -e '.[dev]' $$pins
	touch $@

compat-lowest compat-newest: compat-%: .venv-compat-%/.installed
	.venv-compat-$*/bin/python .ci/compat.py run $*

compat: compat-lowest compat-newest

test: lint typecheck docs pytest compat

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(COMPAT_STAMPS:/.installed=) site .mypy_cache .ruff_cache .pytest_cache
