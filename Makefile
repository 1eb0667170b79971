# Two commands on a fresh machine: `make sweep SPACE=fashion_cnn` and `make test`.
# The first use of any target creates .venv/ and installs the project into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPACE ?= fashion_cnn
HOST ?= 127.0.0.1
PORT ?= 5000

# Real data, offline: DATA_DIR holds fashion-mnist/ and mnist/ (IDX gzip files). Without it the loader
# tries $SWEEPS_DATA_DIR, the Keras cache, Debian's dataset package, then the Keras download.
ifdef DATA_DIR
export SWEEPS_DATA_DIR := $(abspath $(DATA_DIR))
else ifeq ($(origin SWEEPS_DATA_DIR),undefined)
ifneq ($(wildcard ../shared/data),)
export SWEEPS_DATA_DIR := $(abspath ../shared/data)
endif
endif

# The report links each run to the MLflow UI that `make ui` serves (a tracking server's own address wins).
export MLFLOW_UI_URL ?= http://$(HOST):$(PORT)

# STORAGE= reaches the commands in their environment: on a command line any user of the machine could read a
# database password in the process list.
ifneq ($(STORAGE),)
export SWEEPS_STORAGE := $(STORAGE)
endif

truthy = $(filter 1 yes true on,$(1))
SWEEP_ARGS = $(if $(ENGINE),--engine $(ENGINE)) $(if $(TUNER),--tuner $(TUNER)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(CPUS_PER_TRIAL),--cpus-per-trial $(CPUS_PER_TRIAL)) $(if $(GPUS_PER_TRIAL),--gpus-per-trial $(GPUS_PER_TRIAL)) $(if $(TRIALS),--trials $(TRIALS)) $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(call truthy,$(QUICK)),--quick) $(if $(call truthy,$(REFIT)),--refit) $(if $(CONFIRM),--confirm $(CONFIRM)) $(if $(call truthy,$(KERAS_LOG)),--keras-log)

.PHONY: help install lock sweep bench bench-scale status report predict reproduce refit enqueue exclude include list check lint test test-fast docs ui dashboard clean

.DEFAULT_GOAL := help

help:  ## this list (each target's `##` comment)
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The versions in requirements.lock (made by `make lock`) are the ones tested; pyproject.toml keeps the ranges.
# GPU=1 (Linux x86-64): TensorFlow built for NVIDIA GPUs, of the locked version, in place of tensorflow-cpu; both
# install the `tensorflow` package into one folder, so one goes out before the other comes in. Once done, later
# installs of this venv keep it ($(BIN)/.gpu).
tf_locked = $(shell sed -n 's/^tensorflow-cpu==\([^ ;]*\).*/\1/p' requirements.lock)
gpu_venv = $(or $(call truthy,$(GPU)),$(wildcard $(BIN)/.gpu))
# The third line makes the folder whole again when tensorflow-cpu's removal took files both had installed.
define gpu_swap
$(BIN)/pip uninstall --yes tensorflow-cpu
$(BIN)/pip install 'tensorflow[and-cuda]==$(tf_locked)' -c requirements.lock
$(BIN)/pip install --force-reinstall --no-deps 'tensorflow==$(tf_locked)'
touch $(BIN)/.gpu
endef
# pip check, less the one line GPU=1 makes true on purpose: tensorflow stands in for tensorflow-cpu.
pip_check = $(if $(gpu_venv),$(BIN)/pip check | grep -v -e 'requires tensorflow-cpu' -e '^No broken' | { ! grep .; },$(BIN)/pip check)

$(BIN)/.installed: pyproject.toml requirements.lock
	@echo "installing into $(VENV)/ the versions in requirements.lock (first time: about 2.4 GB, several minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e '.[test]' -c requirements.lock
	$(if $(wildcard $(BIN)/.gpu),$(gpu_swap))
	$(pip_check)
	touch $@

$(BIN)/.gpu: | $(BIN)/.installed
	$(gpu_swap)
	$(pip_check)

install: $(BIN)/.installed $(if $(call truthy,$(GPU)),$(BIN)/.gpu)  ## the venv from requirements.lock; GPU=1: TensorFlow for NVIDIA GPUs in place of tensorflow-cpu (Linux x86-64, about 3 GB more)
	@echo "$(VENV)/ holds $(if $(gpu_venv),TensorFlow for NVIDIA GPUs,tensorflow-cpu) $(tf_locked)"

lock:  ## re-resolve requirements.lock from pyproject.toml's ranges (every platform, Python 3.10-3.12; needs uv)
	uv pip compile pyproject.toml --extra test --extra gpu --universal --python-version 3.10 -o requirements.lock

sweep: $(BIN)/.installed  ## run or continue a sweep: SPACE= TRIALS= TIMEOUT= QUICK=1 ENGINE=kerastuner TUNER= WORKERS= STORAGE= REFIT=1 CONFIRM= KERAS_LOG=1 CLUSTER=ray CPUS_PER_TRIAL= GPUS_PER_TRIAL=
	$(BIN)/sweep run $(SPACE) $(SWEEP_ARGS)

# PARTS=efficiency alone: the table problem on all its rows unless BENCH_SPACE= and SUBSET= say otherwise.
comma := ,
efficiency_only = $(if $(filter efficiency,$(PARTS)),$(if $(filter-out efficiency,$(subst $(comma), ,$(PARTS))),,1))
bench: $(BIN)/.installed  ## overhead, pruning and search quality: BENCH_SPACE=fashion_mlp BUDGET=60s SUBSET=6000 PARTS= SEARCHES= TOGETHER=1 CONFIRM= (BENCH_SPACE=fashion_cnn BUDGET=30m SUBSET=0 for real numbers); PARTS=efficiency (table_mlp, SEEDS=3 BASELINE=1 QUICK=1)
	$(BIN)/sweep bench $(or $(BENCH_SPACE),$(if $(efficiency_only),table_mlp,fashion_mlp)) --budget $(or $(BUDGET),60s) $(if $(BENCH_TRIALS),--trials $(BENCH_TRIALS)) $(if $(SUBSET),--subset $(SUBSET),$(if $(efficiency_only),--subset 0)) $(if $(PARTS),--parts $(PARTS)) $(if $(SEARCHES),--searches $(SEARCHES)) $(if $(call truthy,$(TOGETHER)),--together) $(if $(CONFIRM),--confirm $(CONFIRM)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(BASELINE),--baseline $(BASELINE)) $(if $(call truthy,$(QUICK)),--quick)

bench-scale: $(BIN)/.installed  ## framework costs at SIZES=100,300,1000 trials (FULL=1: and 3000) with SCALE_WORKERS=1,4 processes, SERVERS=1 on PostgreSQL + an MLflow server, CLUSTER=ray on a local Ray cluster; nothing trained
	$(BIN)/sweep bench-scale $(if $(call truthy,$(FULL)),--full) $(if $(call truthy,$(SERVERS)),--servers) $(if $(SCALE_WORKERS),--workers $(SCALE_WORKERS)) $(if $(SIZES),--sizes $(SIZES)) $(if $(CLUSTER),--cluster $(CLUSTER))

status: $(BIN)/.installed  ## trials by state, MLflow runs by status, any mismatch: SPACE= QUICK=1 ENGINE=
	$(BIN)/sweep status $(SPACE) $(if $(call truthy,$(QUICK)),--quick) $(if $(ENGINE),--engine $(ENGINE))

report: $(BIN)/.installed  ## rebuild reports/summary.html from the stores, without training
	$(BIN)/sweep report

predict: $(BIN)/.installed  ## predict IMAGE=path.png, ROWS=rows.csv (OUT=) or FROM_TEST=N with the best model of SPACE (QUICK=1 ENGINE=)
	$(BIN)/sweep predict $(SPACE) $(if $(IMAGE),--image '$(IMAGE)',$(if $(ROWS),--rows '$(ROWS)' $(if $(OUT),--out '$(OUT)'),--from-test $(or $(FROM_TEST),0))) $(if $(call truthy,$(QUICK)),--quick) $(if $(ENGINE),--engine $(ENGINE))

reproduce: $(BIN)/.installed  ## train TRIAL=N of SPACE again with its seeds and compare (QUICK=1 ENGINE=)
	$(BIN)/sweep reproduce $(SPACE) --trial $(TRIAL) $(if $(call truthy,$(QUICK)),--quick) $(if $(ENGINE),--engine $(ENGINE))

refit: $(BIN)/.installed  ## train the best config of SPACE on training + validation images and register it (QUICK=1 ENGINE=)
	$(BIN)/sweep refit $(SPACE) $(if $(call truthy,$(QUICK)),--quick) $(if $(ENGINE),--engine $(ENGINE))

enqueue: $(BIN)/.installed  ## queue a configuration into SPACE's study, the rest sampled: SET="units=64 dropout=0.2" (QUICK=1)
	$(BIN)/sweep enqueue $(SPACE) $(foreach s,$(SET),--set '$(s)') $(if $(call truthy,$(QUICK)),--quick)

exclude: $(BIN)/.installed  ## keep completed TRIAL=N of SPACE out of best (its record kept): REASON="…" (QUICK=1 ENGINE=)
	$(BIN)/sweep exclude $(SPACE) --trial "$$TRIAL" --reason "$$REASON" $(if $(call truthy,$(QUICK)),--quick) $(if $(ENGINE),--engine $(ENGINE))

include: $(BIN)/.installed  ## let excluded TRIAL=N of SPACE compete for best again (QUICK=1 ENGINE=)
	$(BIN)/sweep include $(SPACE) --trial "$$TRIAL" $(if $(call truthy,$(QUICK)),--quick) $(if $(ENGINE),--engine $(ENGINE))

list: $(BIN)/.installed  ## the search spaces and whether they are valid
	$(BIN)/sweep list

check: $(BIN)/.installed  ## validate one space file: SPACE=
	$(BIN)/sweep check $(SPACE)

lint: $(BIN)/.installed  ## ruff, mypy and the import contracts (layers, TensorFlow-free modules), as configured in pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint  ## lint, then the whole test suite, slow end-to-end tests included (installs Chromium/PostgreSQL if missing); TEST_WORKERS=2
	scripts/test-services
	$(BIN)/python -m pytest -q -n $(or $(TEST_WORKERS),2)

docs: $(BIN)/.installed  ## the documentation site into site/, built with --strict (a broken link or anchor fails; make test builds it too)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test-fast: $(BIN)/.installed  ## the tests that train nothing end to end, on TEST_WORKERS=2 processes
	$(BIN)/python -m pytest -q -n $(or $(TEST_WORKERS),2) --dist worksteal -m "not slow"

ui: $(BIN)/.installed  ## MLflow UI on http://$(HOST):$(PORT) over $$MLFLOW_TRACKING_URI or mlflow.db (HOST=0.0.0.0 to expose it deliberately)
	@case "$$MLFLOW_TRACKING_URI" in http://*|https://*) echo "MLFLOW_TRACKING_URI is a tracking server: open $$MLFLOW_TRACKING_URI"; exit 0;; esac; \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" --host $(HOST) --port $(PORT) --workers 1

dashboard: $(BIN)/.installed  ## optuna-dashboard over the studies (STORAGE= or the local journal) on http://$(HOST):8080; the URL stays off the command line
	$(BIN)/sweep dashboard --host $(HOST) --port 8080

clean:  ## remove caches and half-finished trial folders (keeps results: optuna.journal, mlflow.db, mlruns/)
	rm -rf .pytest_cache .sweeps/work
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
