# One-command entry points. Everything lives in .venv; nothing is installed system-wide.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: run demo test test-fast bench lint clean lock

# requirements.lock pins every dependency (pyproject.toml keeps the ranges): the same versions
# here, in CI and in the image.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "permit-worker needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

## lock: re-resolve pyproject.toml's ranges in a clean venv and write requirements.lock.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[test]'
	{ echo "# Every dependency, pinned: what make, CI and the Docker image install (as constraints on"; \
	  echo "# pyproject.toml's ranges). Refresh with \`make lock\` and commit the diff."; \
	  .lock-venv/bin/pip list --format=freeze --exclude-editable | grep -viE '^(pip|setuptools|wheel|permit-worker)=='; \
	} > requirements.lock
	rm -rf .lock-venv

## run: the daemon and the HR pages on the embedded default (SQLite file ./permit-worker.db,
##      console delivery), with a sample team "demo" so there is something to remind; prints the
##      HR pages' address and the demo team's sign-in token. Ctrl-C stops it cleanly.
run: $(STAMP)
	$(BIN)/permit-worker db upgrade
	$(BIN)/permit-worker demo seed
	$(BIN)/permit-worker run --serve

## demo: one day of reminders at once: seed, scan, and send as if it were 10:00 in Shanghai today.
##       On a registry of its own (permit-worker-demo.db, made afresh), so it shows the day's
##       reminders even after `make run` has sent them from ./permit-worker.db.
DEMO_DB := sqlite:///permit-worker-demo.db
demo: $(STAMP)
	rm -f permit-worker-demo.db permit-worker-demo.db-wal permit-worker-demo.db-shm
	PERMIT_DATABASE_URL=$(DEMO_DB) $(BIN)/permit-worker db upgrade
	PERMIT_DATABASE_URL=$(DEMO_DB) $(BIN)/permit-worker demo seed
	PERMIT_DATABASE_URL=$(DEMO_DB) $(BIN)/permit-worker scan
	PERMIT_DATABASE_URL=$(DEMO_DB) $(BIN)/permit-worker dispatch --once --now "$$(TZ=Asia/Shanghai date +%Y-%m-%dT10:00:00+08:00)"

## test: lint, then every test (unit, SQLite and PostgreSQL integration, CLI and daemon subprocesses).
##       As root, it installs and starts a local PostgreSQL (127.0.0.1) unless
##       PERMIT_TEST_POSTGRES_URL already points at one; otherwise PostgreSQL tests are skipped.
test: $(STAMP) lint
	@url="$${PERMIT_TEST_POSTGRES_URL:-}"; \
	if [ -z "$$url" ] && [ "$$(id -u)" = 0 ]; then url=$$(./.ci/postgres.sh | tail -1) || url=""; fi; \
	if [ -z "$$url" ]; then echo "note: no PostgreSQL server: running the SQLite half of the suite only"; fi; \
	PERMIT_TEST_POSTGRES_URL="$$url" $(BIN)/python -m pytest

## test-fast: every test but the slow ones (subprocess CLIs and daemons, kill -9 and outage
##            scenarios, the browser), on SQLite only: about 1.5 minutes, for the edit-test loop.
##            `make test` (what CI runs) still runs everything.
test-fast: $(STAMP)
	PERMIT_TEST_POSTGRES_URL= $(BIN)/python -m pytest -q -m "not slow"

## lint: ruff (style, imports, likely bugs) and mypy (types) over the code; part of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: scan, import and dispatch figures, SQLite and PostgreSQL side by side (benchmarks/README.md).
##        BENCH_ARGS=--big adds the 1M-holder registries (the issue's targets; ~10 more minutes).
##        PostgreSQL: PERMIT_BENCH_POSTGRES_URL, else the local test server; skipped if unreachable.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) permit-worker.db permit-worker.db-wal permit-worker.db-shm permit-worker-demo.db* .pytest_cache
