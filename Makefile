# genrec: the two commands that matter are `make demo` and `make test`.
# Both install what they need on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
GENREC := $(VENV)/bin/genrec
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install up down status demo test test-frontend frontend validator chromium qemu bench bench-serving bench-load bench-capacity bench-events bench-ingest bench-faults lint clean

SERVING_VENV ?= .venv-serving
SPY := $(SERVING_VENV)/bin/python

install: $(VENV)/.installed $(SERVING_VENV)/.installed frontend validator chromium qemu

# torch first, pinned to the cached CPU wheel: any other spec would pull GBs of CUDA.
# `local`: every workload's extra, the embedded stack's servers and the benchmarks' plots
# (a workload's image installs only its own extra: deploy/Dockerfile).
$(VENV)/.installed: pyproject.toml setup.py $(wildcard shared/genrec/api/*/*/*.proto)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[local,dev,spark,infra,export]'
	touch $@

# The model server's own environment: Triton (from the nvidia-pytriton wheel) needs numpy<2,
# which the main environment cannot have. genrec goes in without its heavy dependencies;
# only what genrec.model / genrec.serving import is added: the `serving` extra, read from
# pyproject.toml (pip cannot install an extra without the base dependencies).
$(SERVING_VENV)/.installed: pyproject.toml
	test -x $(SPY) || $(PYTHON) -m venv $(SERVING_VENV)
	$(SPY) -m pip install -q --upgrade pip
	$(SPY) -m pip install -q torch==2.13.0
	$(SPY) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['serving'], sep='\n')" > $(SERVING_VENV)/requirements.txt
	$(SPY) -m pip install -q -r $(SERVING_VENV)/requirements.txt
	$(SPY) -m pip install -q --no-deps -e .
	touch $@

# Front end (admin app + shopper demo): npm ci when the lockfile changes, vite build when a source does.
FRONTEND := frontend
FRONTEND_SRC := $(shell find $(FRONTEND)/src -type f 2>/dev/null) $(FRONTEND)/index.html $(FRONTEND)/vite.config.js
frontend: $(FRONTEND)/dist/index.html

$(FRONTEND)/node_modules/.installed: $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund
	touch $@

$(FRONTEND)/dist/index.html: $(FRONTEND)/node_modules/.installed $(FRONTEND_SRC)
	cd $(FRONTEND) && node node_modules/vite/bin/vite.js build

# `genrec deploy check`'s Knative/Istio/Prometheus-operator schemas (npm @kubernetes-models).
VALIDATOR := infra/validate
validator: $(VALIDATOR)/node_modules/.installed

$(VALIDATOR)/node_modules/.installed: $(VALIDATOR)/package.json $(VALIDATOR)/package-lock.json
	cd $(VALIDATOR) && npm ci --no-audit --no-fund
	touch $@

# The browser tests drive Debian's chromium (playwright-core never downloads a browser).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# The portability check runs the local stack's native servers as a CPU without AVX-512 would,
# under Debian's qemu-user (`qemu-x86_64 -cpu max`: AVX2, no AVX-512).
qemu:
	@command -v qemu-x86_64 >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq qemu-user; }

up: install
	$(GENREC) dev up

down:
	test -x $(GENREC) && $(GENREC) dev down || true

status: install
	$(GENREC) dev status

demo: install
	$(GENREC) demo
	@echo "Admin app and shopper demo: $$($(PY) -c "from genrec.config import get_settings as g; print(g().function_url('admin_api'))")/  (local operator token: dev-admin-token; shopper page: #/shop)"

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: install
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# Vitest + the browser end-to-end tests against a fresh local stack (both also run in `make test`).
test-frontend: install
	$(PY) -m pytest tests/frontend

# Results (json + md + png) land in bench/results/. `bench` is the offline quality run (hours on
# 2 CPU cores for Amazon Beauty: each model trains twice, the second time for the cold-start table);
# the others measure serving and the running system.
bench: install
	$(GENREC) bench quality --dataset $(or $(DATASET),../shared/datasets/amazon-beauty) --budget cpu

bench-serving: install
	$(GENREC) bench serving --budget cpu

# Needs the stack and a model in production: `make demo` leaves both.
bench-load: install
	$(GENREC) bench load --duration $(or $(DURATION),60)

# The serving CPU budget and the capacity plan (same needs): two profiled runs of 8 recommend clients,
# every request a cache miss, then every one a hit; docs/capacity.md is computed from them.
bench-capacity: install
	$(GENREC) bench load --duration $(or $(DURATION),60) --recommend-clients 2x4 --event-clients 0x0 --probes 0 \
		--profile --label recommend-8clients
	$(GENREC) bench load --duration $(or $(DURATION),60) --recommend-clients 2x4 --event-clients 0x0 --probes 0 \
		--profile --cache-hits 1 --label recommend-8clients-cache-hits
	$(GENREC) bench capacity

# The event path (same needs): recommend alone; 1,000 events/s offered beside one recommend client
# (click → next list, new item → recommendable, recommend against its value alone); then events
# as fast as accepted, profiled (the CPU budget per event).
bench-events: install
	$(GENREC) bench load --duration $(or $(DURATION),60) --recommend-clients 1x1 --event-clients 0x0 --probes 0 \
		--label recommend-1client-alone
	$(GENREC) bench load --duration $(or $(DURATION),60) --recommend-clients 1x1 --event-clients 2x4 \
		--event-rate 1000 --probes 20 --label events-1000-recommend
	$(GENREC) bench load --duration $(or $(DURATION),60) --recommend-clients 0x0 --event-clients 1x4 \
		--event-batch 1000 --probes 8 --profile --label events

# Item upserts end to end through cold-start-embedding (same needs).
bench-ingest: install
	$(GENREC) bench ingest --items $(or $(ITEMS),2000)

# Stops, kills and stalls every server under load and reconciles every accepted event (same needs).
bench-faults: install
	$(GENREC) bench faults --outage $(or $(OUTAGE),20)

lint: install
	$(VENV)/bin/ruff check shared tests functions pipelines inference infra

clean: down
	rm -rf .genrec artifacts
