# genrec: the two commands that matter are `make demo` and `make test`.
# Both install what they need on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
GENREC := $(VENV)/bin/genrec
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install up down status demo test bench lint clean

install: $(VENV)/.installed

# torch first, pinned to the cached CPU wheel: any other spec would pull GBs of CUDA.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,spark,infra]'
	touch $@

up: install
	$(GENREC) dev up

down:
	test -x $(GENREC) && $(GENREC) dev down || true

status: install
	$(GENREC) dev status

demo: install
	$(GENREC) demo

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: install
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

bench: install
	$(GENREC) bench quality --dataset $(or $(DATASET),../shared/datasets/amazon-beauty) --budget cpu

lint: install
	$(VENV)/bin/ruff check shared tests functions pipelines inference infra

clean: down
	rm -rf .genrec artifacts
