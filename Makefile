# exo2ego: two commands on a fresh machine (Python 3.11 only): `make build-egoexoclip`, `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

EGOEXO4D_ROOT ?=
OUT ?= data/egoexoclip
SAMPLE ?= data/sample_release
RUNNER ?= direct
ARGS ?=

.PHONY: venv build-egoexoclip sample-release test lint clean train bench-loader bench-train

venv: $(STAMP)

# Re-installs only when the pinned requirements change.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

sample-release: $(STAMP)
	$(PY) -m pipeline.sample_release --out $(SAMPLE)

# With no EGOEXO4D_ROOT: generate the bundled sample release and build from it.
build-egoexoclip: $(STAMP)
ifeq ($(strip $(EGOEXO4D_ROOT)),)
	$(PY) -m pipeline.sample_release --out $(SAMPLE)
	$(PY) -m pipeline.egoexoclip --root $(SAMPLE) --out $(OUT) --runner $(RUNNER) $(ARGS)
else
	$(PY) -m pipeline.egoexoclip --root $(EGOEXO4D_ROOT) --out $(OUT) --runner $(RUNNER) $(ARGS)
endif

test: $(STAMP)
	$(VENV)/bin/ruff check pipeline exo2ego_model tests
	$(PY) -m pytest -q tests

# Training: the three stages in order (STAGE=2 runs one). On a machine without a GPU: the tiny CPU smoke run on
# the bundled sample build (built first if missing), so anyone can see it work.
STAGE ?=
TRAIN_CONFIG ?= configs/run.yaml
NGPU ?= $(shell nvidia-smi -L 2>/dev/null | wc -l)
STAGE_ARG := $(if $(strip $(STAGE)),--stage $(STAGE),)

train: $(STAMP)
	@if [ "$(NGPU)" -gt 0 ] 2>/dev/null; then \
	  $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NGPU) -m exo2ego_model.train --config $(TRAIN_CONFIG) $(STAGE_ARG); \
	else \
	  test -f $(OUT)/stats.json || $(MAKE) build-egoexoclip; \
	  echo "no GPU: running the CPU smoke configuration (configs/smoke/run.yaml) on $(OUT)"; \
	  $(PY) -m exo2ego_model.train --config configs/smoke/run.yaml $(STAGE_ARG); \
	fi

bench-loader: $(STAMP)
	$(PY) -m exo2ego_model.bench_loader $(ARGS)

bench-train: $(STAMP)
	$(PY) -m exo2ego_model.bench_train $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline exo2ego_model tests

clean:
	rm -rf data
