# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# axe-core, which the browser tests inject to check every page for WCAG 2 A/AA violations.
AXE := node_modules/axe-core/axe.min.js

# Test files run in this many processes at once (pytest-xdist; a file's tests stay together, so
# its module fixtures, such as its PostgreSQL database or `doormail serve`, are made once).
# Most tests wait on sockets and servers, so two processes use a 2-core machine well.
PYTEST_WORKERS ?= 2

.PHONY: run test lint bench soak fuzz clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

$(AXE): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --silent --no-audit --no-fund && touch $(AXE); \
	else echo "npm not found: the accessibility tests will be skipped"; fi

run: $(STAMP)
	$(BIN)/doormail serve

test: $(STAMP) $(AXE)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

# 10,000 events per run while doormail is killed every few seconds, its SMTP server stopped for
# a minute, then failing a fifth of its commands; prints events, lost, duplicated, kills, outage_s.
soak: $(STAMP)
	DOORMAIL_SOAK=full $(BIN)/pytest -q -m soak tests/soak $(PYTEST_ARGS)

# The API fuzzer of the test suite with more cases per route and a new seed each time.
fuzz: $(STAMP)
	DOORMAIL_FUZZ_CASES=$${DOORMAIL_FUZZ_CASES:-400} DOORMAIL_FUZZ_RANDOM=1 \
		$(BIN)/pytest -q -s tests/integration/test_api_fuzzing.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache
