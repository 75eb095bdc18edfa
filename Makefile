# The two commands of the README: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-faults test-deploy mutants bench bench-targets soak cluster services browser nginx install clean

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

nginx:
	bash scripts/nginx.sh

run: install services
	$(BIN)/analytics migrate
	$(BIN)/analytics demo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start

# The linter, then the suite twice: on the single Redis, then on a 3-master Redis Cluster it
# starts itself.
test: install services browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
	TEST_REDIS=cluster $(BIN)/python -m pytest -q

cluster: install
	$(BIN)/python -m tests.support.cluster

# Deliberate bugs (scripts/mutants.toml), one at a time on a scratch copy: each must make
# the tests it names fail. About 6 minutes.
mutants: install services browser
	$(BIN)/python scripts/mutants.py

test-faults: install services
	$(BIN)/python -m pytest -q -m faults

# deploy/'s nginx site (with TLS) and systemd units in front of real `web` processes.
test-deploy: install services nginx
	$(BIN)/python -m pytest -q -m deploy

bench: install services
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.report

# Only what the targets of bench/targets.py need (about 10 minutes); the page's table of the
# last three consecutive runs counts it. `make bench` then `make bench-targets` twice.
bench-targets: install services
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.run --targets
	$(BIN)/python -m bench.report

# 10 minutes at half the peak /track rate with 200 live dashboards (bench/soak/); writes
# bench/results/soak.json. Shorter: make soak SOAK_ARGS="--duration 60". At the peak (wrk,
# closed loop, as fast as the service answers; the stream backlog judged bounded or not):
# make soak SOAK_ARGS="--peak".
soak: install services
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
