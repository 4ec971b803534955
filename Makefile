SHELL := /bin/bash
# bnbook: two commands do everything on a fresh machine with Python 3.11.
#   make book   set up .venv, build the book into _build/html
#   make test   set up .venv, lint, run every test, execute every chapter, build the book,
#               and check the rendered pages in headless Chromium
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SETUP := $(VENV)/.setup-done
BOOK_LOG := _build/book.log

.PHONY: setup book test unit lint bench clean

$(SETUP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

setup: $(SETUP)

# -W: warnings are errors; -n: nitpicky; execution is forced in _config.yml, so a cell
# that raises fails the build.
book: $(SETUP)
	rm -rf _build/html _build/jupyter_execute _build/.doctrees
	mkdir -p _build
	$(BIN)/jupyter-book build . -W -n --keep-going 2>&1 | tee $(BOOK_LOG); \
	  test $${PIPESTATUS[0]} -eq 0
	@! grep -E "WARNING:|ERROR:|Traceback" $(BOOK_LOG) || (echo "warnings in $(BOOK_LOG)"; exit 1)
	@echo "book: $(CURDIR)/_build/html/index.html"

lint: $(SETUP)
	$(BIN)/ruff check bnlib tests benchmarks
	$(BIN)/ruff format --check bnlib tests benchmarks

unit: $(SETUP)
	$(BIN)/python -m pytest -q -n 2 tests

test: $(SETUP) lint book
	$(BIN)/python -m pytest -q -n 2 tests

bench: $(SETUP)
	$(BIN)/python benchmarks/bench_bnlib.py

clean:
	rm -rf _build .pytest_cache .hypothesis
