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

.PHONY: setup book test unit lint js-test bench clean po check-po

$(SETUP): requirements.txt pyproject.toml book/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e . -e book
	$(BIN)/python -m bnbook.torchvision_source  # torchvision's wheel, read by chapter 7
	touch $@

setup: $(SETUP)

# The site's own JavaScript (MathJax, require.js, the ipywidgets HTML manager) comes from npm
# (package-lock.json); _ext/offline_assets.py copies it into _build/html. On a machine
# without npm, root (as in CI) installs Debian's.
NPM_DONE := node_modules/.npm-ci-done
$(NPM_DONE): package.json package-lock.json
	@command -v npm >/dev/null || { test "$$(id -u)" -eq 0 && apt-get update -q && \
	  apt-get install -y -q npm; } || { echo "npm is missing: install Node.js and npm"; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# The in-page JavaScript (js/: window.bnlibjs, the playground, the explorers): its unit tests
# on Node's built-in runner (node comes with npm).
js-test: $(NPM_DONE)
	node --test js/test/

# The Chinese edition's figures need a font with CJK glyphs (bnbook/style.py falls back to
# Noto Sans CJK SC): Debian's fonts-noto-cjk, which root (as in CI) installs when missing.
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
$(CJK_FONT):
	@test "$$(id -u)" -eq 0 || { echo "$@ is missing: the Chinese edition's figures need it: \
	  sudo apt-get install -y fonts-noto-cjk"; exit 1; }
	apt-get update -q && apt-get install -y -q fonts-noto-cjk
	rm -rf $${MPLCONFIGDIR:-$$HOME/.cache/matplotlib}/fontlist-*.json  # matplotlib sees it

# Both editions, each executing its chapters (figures are drawn in the page's language):
# English into _build/html, Chinese (_config_zh.yml, locales/zh_CN) into _build/html/zh.
# -W: warnings are errors; -n: nitpicky; execution is forced in _config.yml, so a cell
# that raises fails the build.
BOOK_LOG_ZH := _build/book-zh.log
book: $(SETUP) $(NPM_DONE) $(CJK_FONT)
	rm -rf _build/html _build/zh _build/jupyter_execute _build/.doctrees _build/screenshots
	mkdir -p _build
	$(BIN)/jupyter-book build . -W -n --keep-going 2>&1 | tee $(BOOK_LOG); \
	  test $${PIPESTATUS[0]} -eq 0
	@! grep -E "WARNING:|ERROR:|Traceback" $(BOOK_LOG) || (echo "warnings in $(BOOK_LOG)"; exit 1)
	$(BIN)/jupyter-book build . --config _config_zh.yml --path-output _build/zh -W -n \
	  --keep-going 2>&1 | tee $(BOOK_LOG_ZH); test $${PIPESTATUS[0]} -eq 0
	@! grep -E "WARNING:|ERROR:|Traceback" $(BOOK_LOG_ZH) || \
	  (echo "warnings in $(BOOK_LOG_ZH)"; exit 1)
	mv _build/zh/_build/html _build/html/zh
	@echo "book: $(CURDIR)/_build/html/index.html and $(CURDIR)/_build/html/zh/index.html"

# The Chinese edition's translation (README, "中文版"): the English prose of every page as
# .pot files (scripts/i18n_pot.py, no execution), merged into locales/zh_CN/LC_MESSAGES/*.po
# (new paragraphs untranslated, changed ones fuzzy). Run it after changing a page's prose,
# then translate the new and fuzzy entries; scripts/check_po.py says what is left.
po: $(SETUP)
	rm -rf _build/gettext
	$(BIN)/python scripts/i18n_pot.py _build/gettext
	$(BIN)/sphinx-intl update -p _build/gettext/pot -l zh_CN -d locales
	@# Babel flags prose with "%" or "{" as python(-brace)-format, and then `msgfmt -c`
	@# rejects natural translations: the book's messages are prose, never format strings.
	find locales -name '*.po' -exec sed -i -E -e '/^#, python(-brace)?-format$$/d' \
	  -e 's/^#, fuzzy, python(-brace)?-format$$/#, fuzzy/' {} +

# Python everywhere: the library, the book's package, the grader, the tests, the
# benchmarks, the Sphinx extension and scripts; then the chapters (jupytext's canonical
# form, and their code cells through ruff: scripts/lint_chapters.py).
PY_DIRS := bnlib book grader tests benchmarks _ext scripts
lint: $(SETUP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/python scripts/lint_chapters.py

unit: $(SETUP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup tests

# The browser tests (tests/test_site.py) drive Debian's chromium through Playwright's Python
# package (`playwright install` cannot work here); root (as in CI) installs it when missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@test "$$(id -u)" -eq 0 || { echo "$@ is missing: sudo apt-get install -y chromium"; exit 1; }
	apt-get update -q && apt-get install -y -q chromium

# The grader runs each submission in bubblewrap where it can (grader/sandbox.py); root (as in CI)
# installs it when missing. Defined before the targets that need it: make expands a
# prerequisite when it reads the rule.
BWRAP := /usr/bin/bwrap
$(BWRAP):
	@test "$$(id -u)" -eq 0 || { echo "$@ is missing: the grader runs every submission in \
	  bubblewrap: sudo apt-get install -y bubblewrap"; exit 1; }
	apt-get update -q && apt-get install -y -q bubblewrap

# The tests, then check-po: the Chinese edition's translation is complete for the current
# source (every .po message translated and not fuzzy, every figure text in i18n_zh.py).
test: $(SETUP) lint js-test book $(CHROMIUM) $(BWRAP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup tests
	$(MAKE) check-po

check-po: $(SETUP)
	$(BIN)/python scripts/check_po.py

bench: $(SETUP)
	$(BIN)/python benchmarks/bench_bnlib.py

# Homework (README, "For instructors"): for every homework registered in
# grader/homeworks.py (chapters/05_homework.md, ...), the student and solutions editions
# and the Gradescope autograder zip into _build/homework/; and grading of a directory of
# submissions as one HOMEWORK (default: the one most notebooks are) into OUT (default
# _build/grades/<homework>), JOBS at a time (one at a time where the machine has no cgroups
# to bound each), each in a sandbox (bubblewrap; without it, as root, a uid of its own):
# TIMEOUT seconds per submission, CELL_TIMEOUT per cell, PART_TIMEOUT per graded function,
# MEMORY_MB for all of a submission's processes; RUBRIC: a TOML file of points and
# deductions. Root (as in CI) installs bubblewrap when missing.
.PHONY: homework grade bench-grade

SUBMISSIONS ?=
HOMEWORK ?=
OUT ?=
JOBS ?= 2
TIMEOUT ?= 300
CELL_TIMEOUT ?= 60
PART_TIMEOUT ?= 30
MEMORY_MB ?= 4096
RUBRIC ?=
# bubblewrap where it can be had (root installs it); never required: without it the grader
# runs each submission as a uid of its own (root), or refuses and says how to fix it.
.PHONY: sandbox-tools
sandbox-tools:
	@command -v bwrap >/dev/null || { test "$$(id -u)" -eq 0 && apt-get update -q && \
	  apt-get install -y -q bubblewrap; } || echo "note: no bubblewrap here (see README)"

homework: $(SETUP) $(NPM_DONE) sandbox-tools
	$(BIN)/python -m grader.editions --out _build/homework

grade: $(SETUP) sandbox-tools
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=dir [HOMEWORK=05_homework] \
	  [OUT=dir] [JOBS=n]"; exit 2)
	$(BIN)/python -m grader.grade "$(SUBMISSIONS)" --jobs $(JOBS) \
	  --timeout $(TIMEOUT) --cell-timeout $(CELL_TIMEOUT) --part-timeout $(PART_TIMEOUT) \
	  --memory-mb $(MEMORY_MB) $(if $(HOMEWORK),--homework "$(HOMEWORK)") \
	  $(if $(OUT),--out "$(OUT)") $(if $(RUBRIC),--rubric "$(RUBRIC)")

bench-grade: $(SETUP) sandbox-tools
	$(BIN)/python benchmarks/bench_grade.py --jobs $(JOBS)

clean:
	rm -rf _build .pytest_cache .hypothesis
