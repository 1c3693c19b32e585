# exo2ego: two commands on a fresh machine (Python 3.11 only): `make build-egoexoclip`, `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

EGOEXO4D_ROOT ?=
OUT ?= data/egoexoclip
SAMPLE ?= data/sample_release
RUNNER ?= direct
WORKERS ?=
ARGS ?=
# Cluster submission (docs/cluster.md); EGOEXO4D_ROOT and OUT must then be gs:// or s3:// paths.
PROJECT ?=
REGION ?=
BUCKET ?=
IMAGE ?=
SPARK_JOB_ENDPOINT ?=
WORKERS_ARG := $(if $(strip $(WORKERS)),--workers $(WORKERS),)

.PHONY: venv build-egoexoclip build-egoit egoit-sample sample-release test lint clean train bench-loader bench-train bench bench-egoit submit-dataflow submit-spark

venv: $(STAMP)

# Re-installs only when the pinned requirements change.
$(STAMP): requirements.txt requirements-dev.txt requirements-lmms.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-lmms.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

sample-release: $(STAMP)
	$(PY) -m tools.samples.egoexoclip --out $(SAMPLE)

# With no EGOEXO4D_ROOT: generate the bundled sample release and build from it.
# RUNNER=direct (in process), direct-mp (WORKERS processes, default 2), dask (a local dask.distributed cluster of
# WORKERS processes, default 2, started and closed by the build; ARGS="--dask-address HOST:PORT" for a running one).
build-egoexoclip: $(STAMP)
ifeq ($(strip $(EGOEXO4D_ROOT)),)
	$(PY) -m tools.samples.egoexoclip --out $(SAMPLE)
	$(PY) -m pipeline.egoexoclip --root $(SAMPLE) --out $(OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
else
	$(PY) -m pipeline.egoexoclip --root $(EGOEXO4D_ROOT) --out $(OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
endif

# EgoIT (stage-3 instruction data). With no EGOIT_ROOTS / EGOIT_CONFIG: generate the bundled mini-release (real
# annotation rows, generated videos) into $(EGOIT_SAMPLE) and build from its egoit.yaml. EGOIT_CONFIG: a YAML file
# with each source's roots, options, ratio and cap (docs/egoit.md); EGOIT_ROOTS=egtea=/d/egtea,ssv2=/d/ssv2,...
# the short form. RUNNER / WORKERS / ARGS as for build-egoexoclip.
EGOIT_OUT ?= data/egoit
EGOIT_SAMPLE ?= data/egoit_sample
EGOIT_ROOTS ?=
EGOIT_CONFIG ?=
EGOIT_SOURCES := $(if $(strip $(EGOIT_CONFIG)),--config $(EGOIT_CONFIG),)$(if $(strip $(EGOIT_ROOTS)), --roots $(EGOIT_ROOTS),)

egoit-sample: $(STAMP)
	$(PY) -m tools.samples.egoit --out $(EGOIT_SAMPLE)

build-egoit: $(STAMP)
ifeq ($(strip $(EGOIT_SOURCES)),)
	$(PY) -m tools.samples.egoit --out $(EGOIT_SAMPLE)
	$(PY) -m pipeline.egoit --config $(EGOIT_SAMPLE)/egoit.yaml --out $(EGOIT_OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
else
	$(PY) -m pipeline.egoit $(EGOIT_SOURCES) --out $(EGOIT_OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
endif

# EgoBench (the zero-shot evaluation benchmarks, one shard set per task). With no EGOBENCH_CONFIG / EGOBENCH_ROOTS:
# generate the bundled mini-benchmark (real annotation rows where a file is public, synthetic rows elsewhere,
# generated stamped videos; all 11 tasks) into $(EGOBENCH_SAMPLE) and build from its egobench.yaml. EGOBENCH_CONFIG:
# a YAML file with each benchmark's reader, roots and options (template: pipeline/egobench/config.example.yaml);
# EGOBENCH_ROOTS=egoschema=/d/egoschema,vlnqa=/d/vln_qa,... the short form. For evaluation, prefer frames:
# ARGS="--frames 16 --size 336" (mp4 clips of EgoSchema's 180 s windows are large). RUNNER / WORKERS as above.
EGOBENCH_OUT ?= data/egobench
EGOBENCH_SAMPLE ?= data/egobench_sample
EGOBENCH_ROOTS ?=
EGOBENCH_CONFIG ?=
EGOBENCH_SOURCES := $(if $(strip $(EGOBENCH_CONFIG)),--config $(EGOBENCH_CONFIG),)$(if $(strip $(EGOBENCH_ROOTS)), --roots $(EGOBENCH_ROOTS),)
.PHONY: build-egobench egobench-sample

egobench-sample: $(STAMP)
	$(PY) -m tools.samples.egobench --out $(EGOBENCH_SAMPLE)

build-egobench: $(STAMP)
ifeq ($(strip $(EGOBENCH_SOURCES)),)
	$(PY) -m tools.samples.egobench --out $(EGOBENCH_SAMPLE)
	$(PY) -m pipeline.egobench --config $(EGOBENCH_SAMPLE)/egobench.yaml --out $(EGOBENCH_OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
else
	$(PY) -m pipeline.egobench $(EGOBENCH_SOURCES) --out $(EGOBENCH_OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
endif

# EgoClip (initialisation-stage clip-text pairs). With no EGOCLIP_CSV: generate the bundled sample (SYNTHETIC rows
# in EgoVLP's egoclip.csv format, generated Ego4D-style videos) into $(EGOCLIP_SAMPLE) and build from it.
# EGOCLIP_CSV=/d/egovlp/egoclip.csv EGO4D_ROOT=/d/ego4d (the ego4d CLI's --datasets full_scale download) for the
# real data. RUNNER / WORKERS / ARGS as for build-egoexoclip.
EGOCLIP_OUT ?= data/egoclip
EGOCLIP_SAMPLE ?= data/egoclip_sample
EGOCLIP_CSV ?=
EGO4D_ROOT ?=
.PHONY: build-egoclip egoclip-sample

egoclip-sample: $(STAMP)
	$(PY) -m tools.samples.egoclip --out $(EGOCLIP_SAMPLE)

build-egoclip: $(STAMP)
ifeq ($(strip $(EGOCLIP_CSV)),)
	$(PY) -m tools.samples.egoclip --out $(EGOCLIP_SAMPLE)
	$(PY) -m pipeline.egoclip --csv $(EGOCLIP_SAMPLE)/egoclip.csv --ego4d-root $(EGOCLIP_SAMPLE)/ego4d --out $(EGOCLIP_OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
else
	@test -n "$(strip $(EGO4D_ROOT))" || { echo "EGOCLIP_CSV needs EGO4D_ROOT (the Ego4D download root)"; exit 2; }
	$(PY) -m pipeline.egoclip --csv $(EGOCLIP_CSV) --ego4d-root $(EGO4D_ROOT) --out $(EGOCLIP_OUT) --runner $(RUNNER) $(WORKERS_ARG) $(ARGS)
endif

# Google Cloud Dataflow: make submit-dataflow PROJECT=p REGION=us-central1 BUCKET=gs://b IMAGE=REGISTRY/exo2ego-worker:TAG \
#   EGOEXO4D_ROOT=gs://b/egoexo4d OUT=gs://b/egoexoclip [ARGS="--max-workers 50 --machine-type n2-standard-8"]
# IMAGE is docker/Dockerfile.worker. The driver gets Beam's GCP/AWS extras (requirements-cloud.txt) first.
CLOUD_STAMP := $(VENV)/.installed-cloud
$(CLOUD_STAMP): $(STAMP) requirements-cloud.txt
	$(PY) -m pip install --quiet -r requirements-cloud.txt
	touch $(CLOUD_STAMP)

submit-dataflow: $(CLOUD_STAMP)
	$(PY) -m pipeline.egoexoclip --root "$(EGOEXO4D_ROOT)" --out "$(OUT)" --runner dataflow \
	  --project="$(PROJECT)" --region="$(REGION)" --temp-location="$(BUCKET)/tmp" --image="$(IMAGE)" $(ARGS)

# Spark through a Beam Spark job server (PortableRunner): make submit-spark SPARK_JOB_ENDPOINT=host:8099 \
#   IMAGE=REGISTRY/exo2ego-worker:TAG EGOEXO4D_ROOT=s3://b/egoexo4d OUT=s3://b/egoexoclip
submit-spark: $(CLOUD_STAMP)
	$(PY) -m pipeline.egoexoclip --root "$(EGOEXO4D_ROOT)" --out "$(OUT)" --runner spark \
	  --job-endpoint="$(SPARK_JOB_ENDPOINT)" --image="$(IMAGE)" $(WORKERS_ARG) $(ARGS)

test: $(STAMP)
	$(VENV)/bin/ruff check pipeline exo2ego_model tests tools
	$(PY) -m pytest -q tests

# Training: the initialisation and the three stages in order (STAGE=2 runs one). On a machine without a GPU: the
# tiny CPU smoke run on the bundled sample builds (EgoClip for the initialisation, Ego-ExoClip for stages 1-2,
# EgoIT for stage 3; built first if missing).
# NPROC: ranks (processes) under torchrun: one per GPU by default; without a GPU, NPROC=2 runs the smoke
# configuration on 2 CPU ranks (gloo), its shards resampled (the bundled build has fewer shards than readers),
# into runs/smoke-<NPROC>ranks-<PARALLEL>. PARALLEL=ddp|fsdp|none|auto overrides run.parallel.
#   make train NPROC=2 PARALLEL=fsdp
STAGE ?=
TRAIN_CONFIG ?= configs/run.yaml
NGPU ?= $(shell nvidia-smi -L 2>/dev/null | wc -l)
NPROC ?=
PARALLEL ?=
STAGE_ARG := $(if $(strip $(STAGE)),--stage $(STAGE),)
PARALLEL_ARG := $(if $(strip $(PARALLEL)),--parallel $(PARALLEL),)
# GPU_MEM: GiB per GPU for the memory check before any weight loads (default: torch.cuda's; none on CPU)
GPU_MEM ?=
GPU_MEM_ARG := $(if $(strip $(GPU_MEM)),--gpu-mem $(GPU_MEM),)
SMOKE_RANKS_ARGS := --data resampled=true --data epoch_samples=64 \
  --output-dir runs/smoke-$(NPROC)ranks-$(or $(strip $(PARALLEL)),auto)

train: $(STAMP)
	@if [ "$(NGPU)" -gt 0 ] 2>/dev/null; then \
	  $(VENV)/bin/torchrun --standalone --nproc_per_node=$(or $(strip $(NPROC)),$(NGPU)) -m exo2ego_model.train \
	    --config $(TRAIN_CONFIG) $(STAGE_ARG) $(PARALLEL_ARG) $(GPU_MEM_ARG); \
	else \
	  test -f $(EGOCLIP_OUT)/stats.json || $(MAKE) build-egoclip; \
	  test -f $(OUT)/stats.json || $(MAKE) build-egoexoclip; \
	  test -f $(EGOIT_OUT)/stats.json || $(MAKE) build-egoit; \
	  if [ "$(NPROC)" -gt 1 ] 2>/dev/null; then \
	    echo "no GPU: the CPU smoke configuration (configs/smoke/run.yaml) on $(NPROC) CPU ranks (gloo)"; \
	    $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m exo2ego_model.train \
	      --config configs/smoke/run.yaml $(SMOKE_RANKS_ARGS) $(STAGE_ARG) $(PARALLEL_ARG); \
	  else \
	    echo "no GPU: the CPU smoke configuration (configs/smoke/run.yaml) on $(EGOCLIP_OUT), $(OUT), $(EGOIT_OUT)"; \
	    $(PY) -m exo2ego_model.train --config configs/smoke/run.yaml $(STAGE_ARG) $(PARALLEL_ARG) $(GPU_MEM_ARG); \
	  fi; \
	fi

# Memory planner (docs/training.md "Memory planner"): per stage, weights, gradients, optimizer state and activations
# per GPU under DDP and FSDP, and the largest micro-batch that keeps the global batch; the real-size model on the
# meta device (no weights, no GPU). ARGS="--gpus 8 --gpu-mem 80" (defaults: 8 GPUs, this GPU's memory else 80 GiB).
PLAN_CONFIG ?= $(TRAIN_CONFIG)
.PHONY: plan
plan: $(STAMP)
	$(PY) -m exo2ego_model.plan $(PLAN_CONFIG) $(ARGS)

# DATASET=egoexoclip (default): extraction vs the codec limit on generated 3.5-min takes (cached in data/bench/),
# naive per-clip ffmpeg, memory, x264 preset table, the video2dataset peer (its own venv): prints a table, writes
# data/bench/bench.json (28 min on 2 cores on 2026-11-30; +6 min the first time). ARGS="--only memory" / "--skip-peer" /
# "--skip-memory" run parts. DATASET=egoit|egobench|egoclip: that builder's real build of its bundled sample against
# its codec limit (one decode of every source range it used + one encode of its output, same settings); writes
# bench_results/<dataset>-bench-<date>.json (~1-2 min). ARGS="--build-args '--frames 16 --size 336'" / "--profile".
DATASET ?= egoexoclip
bench: $(STAMP)
	$(PY) -m tools.bench --dataset $(DATASET) $(ARGS)

# Validate a download before building it (docs/design.md, "Validate a download"): every source's annotations read
# and checked without videos (no probe, no decode); writes $(VALIDATE_OUT)/validate.json (read, bad, reasons per
# source) and errors.jsonl, prints the table. DATASET=egoit|egobench: ROOTS=name=/path,... (as EGOIT_ROOTS /
# EGOBENCH_ROOTS) or CONFIG=file.yaml; DATASET=egoexoclip: ROOTS=the Ego-Exo4D download root; DATASET=egoclip:
# ROOTS=egoclip.csv. With neither ROOTS nor CONFIG, DATASET's bundled sample (generated first).
ROOTS ?=
CONFIG ?=
VALIDATE_OUT ?= data/validate/$(DATASET)
VALIDATE_SOURCES := $(if $(strip $(CONFIG)),--config $(CONFIG),)$(if $(strip $(ROOTS)), --roots $(ROOTS),)
.PHONY: validate
validate: $(STAMP)
ifeq ($(DATASET),egoexoclip)
	$(if $(strip $(ROOTS)),,$(PY) -m tools.samples.egoexoclip --out $(SAMPLE))
	$(PY) -m pipeline.egoexoclip --root $(or $(strip $(ROOTS)),$(SAMPLE)) --out $(VALIDATE_OUT) --validate
else ifeq ($(DATASET),egoclip)
	$(if $(strip $(ROOTS)),,$(PY) -m tools.samples.egoclip --out $(EGOCLIP_SAMPLE))
	$(PY) -m pipeline.egoclip --csv $(or $(strip $(ROOTS)),$(EGOCLIP_SAMPLE)/egoclip.csv) --out $(VALIDATE_OUT) --validate
else ifeq ($(DATASET),egoit)
	$(if $(strip $(VALIDATE_SOURCES)),,$(PY) -m tools.samples.egoit --out $(EGOIT_SAMPLE))
	$(PY) -m pipeline.egoit $(or $(strip $(VALIDATE_SOURCES)),--config $(EGOIT_SAMPLE)/egoit.yaml) --out $(VALIDATE_OUT) --validate
else ifeq ($(DATASET),egobench)
	$(if $(strip $(VALIDATE_SOURCES)),,$(PY) -m tools.samples.egobench --out $(EGOBENCH_SAMPLE))
	$(PY) -m pipeline.egobench $(or $(strip $(VALIDATE_SOURCES)),--config $(EGOBENCH_SAMPLE)/egobench.yaml) --out $(VALIDATE_OUT) --validate
else
	@echo "make validate DATASET=egoit|egobench|egoclip|egoexoclip [ROOTS=... | CONFIG=file.yaml]"; exit 2
endif

# Visual audit of a finished build: $(OUT)/report/index.html + PNGs (contact sheet of random samples, clip lengths,
# counts by split and scenario, failures). ARGS="--samples 24 --seed 1".
.PHONY: report
report: $(STAMP)
	$(PY) -m tools.report --out $(OUT) $(ARGS)

bench-loader: $(STAMP)
	$(PY) -m tools.bench.loader $(ARGS)

# EgoIT build throughput on the bundled mini-release (mp4 and frames; items/s and clips/s per core).
bench-egoit: $(STAMP)
	$(PY) -m tools.bench.egoit $(ARGS)

bench-train: $(STAMP)
	$(PY) -m tools.bench.train $(ARGS)

# Evaluation candidate scoring (tools/bench/eval.py): the shared video prefix vs the prefix re-encoded per candidate,
# tiny model on the bundled mini-benchmark (built first when $(EGOBENCH_OUT) has none), at the tiny prefix and at the
# real configuration's 3,042 visual tokens -> bench_results/eval-bench-<date>.json. ARGS="--only realistic".
.PHONY: bench-eval
bench-eval: $(STAMP)
	test -f $(EGOBENCH_OUT)/stats.json || $(MAKE) build-egobench ARGS=
	$(PY) -m tools.bench.eval --bench $(EGOBENCH_OUT) $(ARGS)

# EgoBench evaluation (exo2ego_model/eval/run.py): make eval [CKPT=dir] [TASKS=a,b] [BENCH=dir] [EVAL_OUT=dir]
#   [ARGS="--max-items 50 --frames 16 --size 336 --device cuda"]
# CKPT: a folder written by export.save_pretrained. With neither CKPT nor BENCH: the tiny random CPU model of
# configs/smoke/run.yaml on the bundled mini-benchmark (built first by `make build-egobench` when $(EGOBENCH_OUT)
# has no stats.json): a smoke test whose numbers are meaningless. Writes EVAL_OUT/predictions.jsonl, scores.json,
# table.md; an interrupted run resumes from predictions.jsonl. ARGS=--plan: forward passes and projected GPU-hours
# per task at the REAL benchmark sizes, nothing run or built (exo2ego_model/eval/plan.py).
CKPT ?=
TASKS ?=
BENCH ?=
EVAL_OUT ?= runs/eval
EVAL_BENCH := $(or $(strip $(BENCH)),$(strip $(EGOBENCH_OUT)),data/egobench)
.PHONY: eval
eval: $(STAMP)
ifeq ($(strip $(CKPT)$(BENCH)$(findstring --plan,$(ARGS))),)
	test -f $(EVAL_BENCH)/stats.json || $(MAKE) build-egobench EGOBENCH_OUT=$(EVAL_BENCH) ARGS=
endif
	$(PY) -m exo2ego_model.eval --bench $(EVAL_BENCH) --out $(EVAL_OUT) $(if $(strip $(CKPT)),--ckpt $(CKPT),) \
	  $(if $(strip $(TASKS)),--tasks $(TASKS),) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline exo2ego_model tests tools

clean:
	rm -rf data
