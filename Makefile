# The two commands a new user needs: `make demo` (the pipeline on its embedded local Ray,
# offline demo data) and `make test` (every suite). Each does its own set-up.
SHELL := /bin/bash
UV_VERSION := 0.13.8
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup lint browser demo test test-fast test-unit test-integration test-kube test-images e2e-kind testbed kind-node images bench bench-gpu lock clean

$(UV):
	$(PYTHON) -m pip install --user --quiet "uv==$(UV_VERSION)"

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (CI, this kind of sandbox) Python
# never caches bytecode, and every Ray worker compiled torch, transformers and Ray again on
# import; compiled once here (about 20 s), the worker-failure integration test took 59 s
# against 125 s (tests/unit/test_environment.py). The Makefile is a prerequisite so a venv made before gets it.
$(VENV)/.synced: uv.lock pyproject.toml Makefile | $(UV)
	$(UV) sync --frozen --all-extras --compile-bytecode --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/vitpipeline demo --workdir demo-data

# ruff's lint rules and format, as configured in pyproject.toml (`ruff format .` fixes the latter).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

testbed:
	tests/testbed/build.sh

# The air-gapped kind node image (tests/kind/README.md); skipped when KIND_NODE_IMAGE names a
# stock one (e.g. kindest/node:v1.37.2 on a machine with registry access).
kind-node: testbed
	@if [ -z "$$KIND_NODE_IMAGE" ]; then tests/kind/build.sh; else echo "kind node image: $$KIND_NODE_IMAGE"; fi

PHASE := tests/support/phase.sh

# Every suite, the kind end-to-end run included; ends with the time each phase took.
# Chromium (for the report's browser test) and the e2e images are installed and built in the
# background beside the two Go builds (log: .cache/images-build.log).
test:
	@$(PHASE) --reset
	@$(PHASE) "python env (uv sync)" $(MAKE) --no-print-directory setup
	@$(PHASE) "lint (ruff)" $(MAKE) --no-print-directory lint
	@mkdir -p .cache; \
	  { $(PHASE) "chromium (beside the Go builds)" tests/support/chromium.sh && \
	    $(PHASE) "e2e images (beside the Go builds)" tests/e2e/build-images.sh; } > .cache/images-build.log 2>&1 & \
	  images=$$!; trap 'kill $$images 2>/dev/null' EXIT; \
	  $(PHASE) "testbed (control plane from Go modules)" $(MAKE) --no-print-directory testbed && \
	  $(PHASE) "kind node image" $(MAKE) --no-print-directory kind-node && \
	  { wait $$images || { tail -n 40 .cache/images-build.log >&2; echo "background set-up failed" >&2; exit 1; }; } && \
	  trap - EXIT
	$(PY) -m pytest tests -v --durations=20

# Debian's Chromium, for the browser test of report.html.
browser:
	tests/support/chromium.sh

# Everything but the kind end-to-end run.
test-fast: setup testbed browser
	$(PY) -m pytest tests -v -m "not e2e" --durations=15

# ViTPipeline -> Succeeded on a real kind cluster (builds what it needs; tears the cluster down).
e2e-kind: setup testbed kind-node
	$(PY) -m pytest tests/e2e -v -s --durations=10

test-unit: setup
	$(PY) -m pytest tests/unit tests/operator -q

test-integration: setup browser
	$(PY) -m pytest tests/integration -v

test-kube: setup testbed
	$(PY) -m pytest tests/kube -v

images: setup
	images/build.sh all

test-images: setup
	$(PY) -m pytest -m images tests/images tests/kube/test_operator_image.py -v

bench: setup testbed
	$(PY) -m bench.pipeline_bench
	$(PY) -m bench.predict_bench
	$(PY) operator/bench_operator.py

# ViT-B/16 on one accelerator: train and infer images/s with MFU, and JPEG -> predictions
# through the pipeline's own data path (a tiny ViT on a machine without a GPU).
bench-gpu: setup
	$(PY) -m bench.gpu_bench

lock:
	$(UV) lock

clean:
	rm -rf demo-data $(VENV)
