# The two commands of the README: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-faults mutants bench soak cluster services browser install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/services.sh

browser:
	bash scripts/browser.sh

run: install services
	$(BIN)/analytics migrate
	$(BIN)/analytics demo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start

# The suite twice: on the single Redis, then on a 3-master Redis Cluster it starts itself.
test: install services browser
	$(BIN)/python -m pytest -q
	TEST_REDIS=cluster $(BIN)/python -m pytest -q

cluster: install
	$(BIN)/python -m tests.cluster

# Deliberate bugs (scripts/mutants.toml), one at a time on a scratch copy: each must make
# the tests it names fail. About 6 minutes.
mutants: install services browser
	$(BIN)/python scripts/mutants.py

test-faults: install services
	$(BIN)/python -m pytest -q -m faults

bench: install services
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/report.py

# 10 minutes at half the peak /track rate with 200 live dashboards (bench/soak.py); writes
# bench/results/soak.json. Shorter: make soak SOAK_ARGS="--duration 60".
soak: install services
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
