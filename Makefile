# The README's two commands: `make book` and `make test`. Each creates or updates .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= auto
DEVICE ?= auto
JOBS ?= auto
# `make test` runs the test files in this many processes at most (pytest-xdist; one a core: 2 on CI)
TEST_WORKERS ?= 4
STAMP := $(VENV)/.installed

.PHONY: venv test lint book figures clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[book,test]'
	touch $(STAMP)

# lint, format and type checks of the package (config in pyproject.toml), then the tests
lint: venv
	$(VENV)/bin/ruff check mi_lib
	$(VENV)/bin/ruff format --check mi_lib
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q -ra -n auto --maxprocesses $(TEST_WORKERS) --dist loadfile

figures: venv
	$(PY) -m mi_lib reproduce --profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS)

book: figures
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/build_book.sh

bench: venv
	$(PY) benchmarks/bench_sweep.py

clean:
	rm -rf _build book/executed book/figures
