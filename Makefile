# Command Center: `make demo` runs the whole platform once on the embedded default,
# `make test` runs every test. Both bootstrap .venv first; nothing else needs installing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The JS side: the real socket.io-client for the tests, the Node Socket.IO peer for bench-stream.
JS := streaming/js
JS_STAMP := $(JS)/node_modules/.installed-stamp
# The page's build tools (esbuild, Preact, uPlot): `make web` builds with them, a test checks the build.
WEB_STAMP := web/node_modules/.installed-stamp

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
# PYTHONDONTWRITEBYTECODE is set on some machines: compile at install time so CLIs start fast.
export UV_COMPILE_BYTECODE := 1

.PHONY: install chromium pango web demo test ui sidecar stack chaos bench bench-pipeline bench-cdc bench-rest bench-stream bench-workers bench-live-state bench-landing bench-slowloris bench-startup bench-tiers bench-parity bench-page lint sql docs docs-generate clean

# Installs exactly what uv.lock pins (two installs are identical): after editing pyproject.toml's
# dependencies, run `.venv/bin/uv lock` and commit uv.lock. Only python3 is needed to start: uv
# comes from pip the first time, then from the lock (its dev extra) like everything else.
$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.13,<0.14'
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --quiet --locked --extra dev --python $(BIN)/python
	@touch $@

# Without npm the tests that need it skip (and fail under CI=true, which must run them).
$(JS_STAMP): $(JS)/package-lock.json
	@if ! command -v npm >/dev/null; then \
	  echo "npm not found: the Socket.IO JS-client tests and bench-stream's Node peer will be skipped"; \
	elif (cd $(JS) && npm ci --no-audit --no-fund --loglevel=error); then touch $@; \
	elif [ "$$CI" = true ]; then exit 1; \
	else echo "npm ci failed (offline?): the Socket.IO JS-client tests will be skipped"; fi

# The page's tests drive a real headless Chromium through Playwright, Debian's build (Playwright's
# own browser download needs the internet). Installed with apt-get when missing and this is root;
# otherwise the browser tests skip with the reason (and fail under CI=true, which must run them).
chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	  { echo "apt-get could not install chromium: the browser tests will be skipped"; [ "$$CI" != true ]; }; \
	else echo "no chromium (install it: apt-get install chromium): the browser tests will be skipped"; \
	  [ "$$CI" != true ]; fi

$(WEB_STAMP): web/package-lock.json
	@if ! command -v npm >/dev/null; then \
	  echo "npm not found: the check that the committed page matches web/ will be skipped"; \
	elif (cd web && npm ci --no-audit --no-fund --loglevel=error); then touch $@; \
	elif [ "$$CI" = true ]; then exit 1; \
	else echo "npm ci in web/ failed (offline?): the page's build check will be skipped"; fi

# The reports' PDFs are drawn by WeasyPrint, which needs the system's Pango (libpango-1.0-0,
# libpangoft2-1.0-0). Installed with apt-get when missing and this is root; otherwise this says what
# to install (the PDF tests then fail with WeasyPrint's own error).
pango:
	@if ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libpango-1.0-0 libpangoft2-1.0-0 >/dev/null || \
	  { echo "apt-get could not install Pango: the reports' PDFs cannot be made"; [ "$$CI" != true ]; }; \
	else echo "no Pango (install it: apt-get install libpango-1.0-0 libpangoft2-1.0-0): the reports' PDFs cannot be made"; \
	  [ "$$CI" != true ]; fi

install: $(STAMP) $(JS_STAMP) $(WEB_STAMP) chromium pango

# The page's sources (web/) rebuilt into streaming/static/ (committed: a user with only Python gets
# the page); `npm run check` in web/ fails when the committed build is not what the sources give.
web: $(WEB_STAMP)
	cd web && npm run build

demo: install
	@$(BIN)/python -m scripts.run resources.dagster_home >/dev/null
	@$(BIN)/python -m scripts.run scripts.demo

# Two pytest-xdist workers, each module (or shared world) whole on one, the longest first
# (tests/conftest.py); `make test TEST_WORKERS=0` runs in one process, as pytest alone does.
TEST_WORKERS ?= 2

test: install
	@$(BIN)/python -m scripts.run resources.dagster_home >/dev/null
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

ui: install
	@$(BIN)/python -m scripts.run resources.dagster_home >/dev/null
	@$(BIN)/python -m scripts.run scripts.ui

sidecar: install
	@$(BIN)/python -m scripts.run scripts.sidecar

stack: install
	$(BIN)/python -m scripts.stack $(STACK_ARGS)

# The pipeline bench's sizes: `make bench SIZE=10000000` (or BENCH_ARGS="--events 10000000"; the
# latter wins when both are given); unset, 5,000 and 1,000,000 sandbox events.
PIPELINE_BENCH_ARGS = $(if $(SIZE),--events $(SIZE)) $(BENCH_ARGS)

bench: install
	$(BIN)/python -m scripts.bench $(PIPELINE_BENCH_ARGS)
	$(BIN)/python -m scripts.bench_cdc $(BENCH_CDC_ARGS)
	$(BIN)/python -m scripts.bench_rest $(BENCH_REST_ARGS)
	$(BIN)/python -m scripts.bench_stream $(BENCH_STREAM_ARGS)
	$(BIN)/python -m scripts.bench_workers $(BENCH_WORKERS_ARGS)
	$(BIN)/python -m scripts.bench_live_state $(BENCH_LIVE_STATE_ARGS)
	$(BIN)/python -m scripts.bench_slowloris $(BENCH_SLOWLORIS_ARGS)
	$(BIN)/python -m scripts.bench_startup $(BENCH_STARTUP_ARGS)
	$(BIN)/python -m scripts.bench_parity $(BENCH_PARITY_ARGS)
	$(BIN)/python -m scripts.bench_page $(BENCH_PAGE_ARGS)

# Only the pipeline bench (scripts/bench.py), e.g. `make bench-pipeline SIZE=1000000`.
bench-pipeline: install
	$(BIN)/python -m scripts.bench $(PIPELINE_BENCH_ARGS)

bench-cdc: install
	$(BIN)/python -m scripts.bench_cdc $(BENCH_CDC_ARGS)

bench-rest: install
	$(BIN)/python -m scripts.bench_rest $(BENCH_REST_ARGS)

bench-stream: install
	$(BIN)/python -m scripts.bench_stream $(BENCH_STREAM_ARGS)

# Acknowledged webhooks/s at saturation, one sidecar worker against two (CC_SIDECAR_WORKERS), in one run.
bench-workers: install
	$(BIN)/python -m scripts.bench_workers $(BENCH_WORKERS_ARGS)

# One live-state run (streaming/state/) as its live window grows to 200k events: flat, or growing with it.
bench-live-state: install
	$(BIN)/python -m scripts.bench_live_state $(BENCH_LIVE_STATE_ARGS)

# Acks/s and CPU per webhook with the landing in files and in Postgres (CC_LANDING_URL), in one run.
bench-landing: install
	$(BIN)/python -m scripts.bench_landing $(BENCH_LANDING_ARGS)

bench-slowloris: install
	$(BIN)/python -m scripts.bench_slowloris $(BENCH_SLOWLORIS_ARGS)

# Process start → first 202, with an empty and a ~2 GB landing log (writes 2 GB to a temp dir).
bench-startup: install
	$(BIN)/python -m scripts.bench_startup $(BENCH_STARTUP_ARGS)

# Live state parity on a 100k-event world: the sidecar's /api/workflows before a build equals it.
bench-parity: install
	$(BIN)/python -m scripts.bench_parity $(BENCH_PARITY_ARGS)

# The page in Chromium with ~10M events in the warehouse: first load (time, bytes) and 1,000 webhooks/s
# for 60 s (frames per second, feed lag). BENCH_PAGE_ARGS="--data-dir DIR" keeps the warehouse.
bench-page: install
	$(BIN)/python -m scripts.bench_page $(BENCH_PAGE_ARGS)

# The long chaos and attack suite (≤ 10 min, loopback only); its fast parts run in `make test`.
chaos: install
	$(BIN)/python -m scripts.chaos $(CHAOS_ARGS)

sql: install
	@$(BIN)/python -m scripts.run scripts.sql $(SQL_ARGS)

# The dbt docs site (scripts/dbt_docs.py): generated without opening warehouse.duckdb, so it works
# while a build runs; `docs` serves it on CC_DOCS_PORT (8580), `docs-generate` only writes
# $(CC_DATA_DIR)/docs/site/index.html (one static file).
docs: install
	@$(BIN)/python -m scripts.run scripts.dbt_docs

docs-generate: install
	@$(BIN)/python -m scripts.run scripts.dbt_docs --no-serve

bench-tiers: install
	$(BIN)/python -m scripts.bench_tiers $(BENCH_TIERS_ARGS)

lint: install
	$(BIN)/ruff check .
	cd dbt_project && $(abspath $(BIN))/sqlfluff lint . --disable-progress-bar

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
