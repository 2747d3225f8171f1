# Everything runs from a virtual environment this Makefile builds: nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-all lint format bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# The whole venue in one process, on an embedded Valkey kept under ./data, with a demo market
# trading on it (`tradepit serve` runs the venue alone).
run: $(STAMP)
	$(BIN)/tradepit demo

test: $(STAMP)
	$(BIN)/pytest

# The slow variants too (long Hypothesis runs, long crash tests).
test-all: $(STAMP)
	$(BIN)/pytest -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)
	$(BIN)/python bench/matcher.py --workload cross
	$(BIN)/python bench/matcher.py --workload deep
	$(BIN)/python bench/pipeline.py --fsync everysec --shards 1
	$(BIN)/python bench/pipeline.py --fsync everysec --shards 2
	$(BIN)/python bench/pipeline.py --fsync always --shards 1
	$(BIN)/python bench/pipeline.py --fsync always --shards 2
	$(BIN)/python bench/pipeline.py --fsync everysec --shards 2 --rate 10000
	$(BIN)/python bench/http.py

bench-quick: $(STAMP)
	$(BIN)/python bench/matcher.py --quick
	$(BIN)/python bench/pipeline.py --quick
	$(BIN)/python bench/http.py --quick

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis
