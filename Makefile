# aim_parquet developer commands. Every target sets up what it needs (a local .venv) itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INTEGRATIONS_STAMP := $(VENV)/.installed-integrations
CONVERTERS_STAMP := $(VENV)/.installed-converters
SPARK_STAMP := $(VENV)/.installed-spark
OBJECTSTORE_STAMP := $(VENV)/.installed-objectstore
AIM_VENV ?= .venv-convert-aim
AIM_VERSION ?= 3.29.1
MLFLOW2_VENV ?= .venv-convert-mlflow2
BROWSER_STAMP := $(VENV)/.installed-browser
CHROMIUM ?= /usr/bin/chromium
PYTEST_FLAGS ?= -q -p no:cacheprovider

.DEFAULT_GOAL := help
.PHONY: help install demo up test test-slow test-integrations test-converters test-browser test-spark test-objectstore test-all lint format bench bench-quick bench-convert bench-ui clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install aim_parquet with its dev tools

demo: $(STAMP) ## Track a demo training run into ./.aim, compact it, query it, print a summary
	$(PY) tools/demo.py

up: $(STAMP) ## Serve the web UI on the demo repo (run `make demo` first) at http://localhost:43800/
	$(PY) -m aim_parquet up --repo .

test: $(STAMP) ## Run the test suite (without slow, integrations, converters, browser and gpu tests)
	$(PY) -m pytest $(PYTEST_FLAGS) -m "not slow and not integrations and not gpu and not converters and not browser and not spark and not objectstore"

test-slow: $(STAMP) ## Run the slow randomized crash/property trials
	$(PY) -m pytest $(PYTEST_FLAGS) -m "slow and not integrations and not browser and not converters and not spark and not objectstore"

$(BROWSER_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[dev,ui,browser,figures]'
	@touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP) ## Web UI tests in headless Chromium (needs `apt-get install -y chromium`)
	@test -x $(CHROMIUM) || { echo "make test-browser: $(CHROMIUM) not found: apt-get install -y chromium"; exit 1; }
	AIM_PARQUET_CHROMIUM=$(CHROMIUM) $(PY) -m pytest $(PYTEST_FLAGS) -m browser tests/ui

$(INTEGRATIONS_STAMP): $(STAMP) requirements-integrations.txt
	$(PY) -m pip install -q -r requirements-integrations.txt
	@touch $(INTEGRATIONS_STAMP)

test-integrations: $(INTEGRATIONS_STAMP) ## Train tiny Lightning/HF/Keras/XGBoost/LightGBM/Optuna models and check what landed
	KERAS_BACKEND=torch HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_FLAGS) -m integrations tests/integrations

$(CONVERTERS_STAMP): $(STAMP) requirements-converters.txt
	$(PY) -m pip install -q -r requirements-converters.txt
	@touch $(CONVERTERS_STAMP)

$(AIM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(AIM_VENV)
	$(AIM_VENV)/bin/python -m pip install -q --upgrade pip
	$(AIM_VENV)/bin/python -m pip install -q -e '.[aim]' 'aim==$(AIM_VERSION)'
	@touch $(AIM_VENV)/.installed

$(MLFLOW2_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(MLFLOW2_VENV)
	$(MLFLOW2_VENV)/bin/python -m pip install -q --upgrade pip
	$(MLFLOW2_VENV)/bin/python -m pip install -q -e . 'mlflow-skinny==2.22.5' 'sqlalchemy<2.1' alembic pytest
	@touch $(MLFLOW2_VENV)/.installed

test-converters: $(CONVERTERS_STAMP) $(AIM_VENV)/.installed $(MLFLOW2_VENV)/.installed ## Convert files written by tensorboardX, torch, MLflow 3 and 2 and Aim $(AIM_VERSION); compare every point
	AIM_PARQUET_AIM_PYTHON=$(AIM_VENV)/bin/python $(PY) -m pytest $(PYTEST_FLAGS) -m converters tests/converters tests/compat
	$(MLFLOW2_VENV)/bin/python -m pytest $(PYTEST_FLAGS) -m converters tests/converters/test_mlflow.py

$(SPARK_STAMP): $(STAMP) requirements-spark.txt
	$(PY) -m pip install -q -r requirements-spark.txt
	@touch $(SPARK_STAMP)

test-spark: $(SPARK_STAMP) ## Spark (local mode, Java 17) reads the compacted dataset and the README's Spark lines
	@command -v java >/dev/null 2>&1 || { echo "make test-spark: java not found: apt-get install -y openjdk-17-jre-headless"; exit 1; }
	$(PY) -m pytest $(PYTEST_FLAGS) -m spark tests/spark

$(OBJECTSTORE_STAMP): $(STAMP) requirements-objectstore.txt
	$(PY) -m pip install -q -r requirements-objectstore.txt
	@touch $(OBJECTSTORE_STAMP)

test-objectstore: $(OBJECTSTORE_STAMP) ## Export to a local S3-compatible server (moto), read back, kill uploads
	$(PY) -m pytest $(PYTEST_FLAGS) -m objectstore tests/objectstore

bench-convert: $(CONVERTERS_STAMP) $(AIM_VENV)/.installed ## Time the converters against each tracker's own reader
	$(PY) tools/bench_convert.py --aim-python $(AIM_VENV)/bin/python --write

test-all: test test-slow test-integrations test-converters test-browser test-spark test-objectstore ## Everything

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(PY) -m ruff check aim_parquet tests tools
	$(PY) -m ruff format --check aim_parquet tests tools
	$(PY) -m mypy

format: $(STAMP) ## Apply ruff formatting and autofixes
	$(PY) -m ruff check --fix aim_parquet tests tools
	$(PY) -m ruff format aim_parquet tests tools

bench: $(BROWSER_STAMP) ## Full side-by-side benchmark against Aim 3.29, UI in headless Chromium (writes BENCHMARKS.md)
	$(PY) tools/bench.py

bench-quick: $(STAMP) ## Quick benchmark (under two minutes)
	$(PY) tools/bench.py --quick

bench-ui: $(BROWSER_STAMP) ## Only the web UI benchmarks (headless Chromium; side by side with `aim up`)
	$(PY) tools/bench.py --only ui

clean: ## Remove the virtualenvs, caches and the demo repo
	rm -rf $(VENV) .venv-aim $(AIM_VENV) $(MLFLOW2_VENV) .aim .pytest_cache .mypy_cache .ruff_cache *.egg-info
