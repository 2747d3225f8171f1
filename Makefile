# Everything runs from a virtual environment this Makefile builds: nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The web's npm dependencies (the page's chart library, the API pages' Swagger UI), installed
# from the lock file. None needs an install script, so none runs (swagger-ui-dist's analytics
# dependency, @scarf/scarf, would report the install).
WEB := src/tradepit/web
NODE_STAMP := $(WEB)/node_modules/.installed-stamp
# The browser the page's tests drive: Debian's chromium (Playwright's download is unreachable).
CHROMIUM := /usr/bin/chromium
# The Prometheus server the metrics' end-to-end test scrapes the venue with: Debian's.
PROMETHEUS := /usr/bin/prometheus
# The allocator the embedded Valkey runs with where the system has it (optional: without it,
# the C library's malloc: Valkey spends ~20% less CPU per order with jemalloc).
JEMALLOC_STAMP := $(VENV)/.jemalloc-stamp
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The legacy SDK (alpaca-trade-api 3.2) pins websockets<11 and msgpack==1.0.3, which the venue's
# own dependencies outgrew: its end-to-end tests run it from a virtual environment of its own.
LEGACY_VENV := .venv-legacy
LEGACY_REQUIREMENTS := tests/e2e/legacy/requirements.txt
LEGACY_STAMP := $(LEGACY_VENV)/.installed-stamp
# lumibot 4.x, for the slow end-to-end test of an unmodified lumibot strategy trading through an
# open (tests/e2e/test_lumibot.py): its dependencies are large, so it has a virtual environment of
# its own, built for `make test-all` only.
LUMIBOT_VENV := .venv-lumibot
LUMIBOT_REQUIREMENTS := tests/e2e/lumibot/requirements.txt
LUMIBOT_STAMP := $(LUMIBOT_VENV)/.installed-stamp

.PHONY: run test test-all lint format bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

$(LEGACY_STAMP): $(LEGACY_REQUIREMENTS)
	$(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/pip install --quiet --upgrade pip
	$(LEGACY_VENV)/bin/pip install --quiet -r $(LEGACY_REQUIREMENTS)
	touch $(LEGACY_STAMP)

$(LUMIBOT_STAMP): $(LUMIBOT_REQUIREMENTS)
	$(PYTHON) -m venv $(LUMIBOT_VENV)
	$(LUMIBOT_VENV)/bin/pip install --quiet --upgrade pip
	$(LUMIBOT_VENV)/bin/pip install --quiet -r $(LUMIBOT_REQUIREMENTS)
	touch $(LUMIBOT_STAMP)

$(NODE_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --ignore-scripts
	touch $(NODE_STAMP)

$(JEMALLOC_STAMP): $(STAMP)
	@$(BIN)/python -c "import ctypes.util, sys; sys.exit(not ctypes.util.find_library('jemalloc'))" \
	|| DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y libjemalloc2 \
	|| ($(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y libjemalloc2) \
	|| echo "tradepit: no jemalloc here; the embedded Valkey uses the C library's malloc"
	touch $(JEMALLOC_STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium

$(PROMETHEUS):
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends prometheus

# The whole venue in one process, on an embedded Valkey kept under ./data, with a demo market
# trading on it (`tradepit serve` runs the venue alone).
run: $(STAMP) $(NODE_STAMP) $(JEMALLOC_STAMP)
	$(BIN)/tradepit demo $(ARGS)

test: $(STAMP) $(LEGACY_STAMP) $(NODE_STAMP) $(CHROMIUM) $(PROMETHEUS) $(JEMALLOC_STAMP)
	$(BIN)/pytest

# The slow variants too (long Hypothesis runs, long crash tests).
test-all: $(STAMP) $(LEGACY_STAMP) $(LUMIBOT_STAMP) $(NODE_STAMP) $(CHROMIUM) $(PROMETHEUS) $(JEMALLOC_STAMP)
	$(BIN)/pytest -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP) $(JEMALLOC_STAMP)
	$(BIN)/python bench/matcher.py --workload cross
	$(BIN)/python bench/matcher.py --workload deep
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/pipeline.py --fsync everysec --shards 1
	$(BIN)/python bench/pipeline.py --fsync everysec --shards 2
	$(BIN)/python bench/pipeline.py --fsync always --shards 1
	$(BIN)/python bench/pipeline.py --fsync always --shards 2
	$(BIN)/python bench/pipeline.py --fsync everysec --shards 2 --rate 10000
	$(BIN)/python bench/pipeline.py --fsync everysec --shards 2 --without-history
	$(BIN)/python bench/pipeline.py --cluster
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/restart.py
	$(BIN)/python bench/http_protocol.py
	$(BIN)/python bench/chain.py
	$(BIN)/python bench/http.py
	$(BIN)/python bench/fanout.py --repeat 3
	$(BIN)/python bench/socket_floor.py

bench-quick: $(STAMP) $(JEMALLOC_STAMP)
	$(BIN)/python bench/matcher.py --quick
	$(BIN)/python bench/ledger.py --quick
	$(BIN)/python bench/pipeline.py --quick
	$(BIN)/python bench/pipeline.py --cluster --quick
	$(BIN)/python bench/failover.py --quick
	$(BIN)/python bench/restart.py --quick
	$(BIN)/python bench/http_protocol.py --quick
	$(BIN)/python bench/chain.py --quick
	$(BIN)/python bench/http.py --quick
	$(BIN)/python bench/fanout.py --quick
	$(BIN)/python bench/socket_floor.py --quick

clean:
	rm -rf $(VENV) $(LEGACY_VENV) $(LUMIBOT_VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis $(WEB)/node_modules
