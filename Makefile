# The two commands a new user needs: `make demo` (the pipeline on its embedded local Ray,
# offline demo data) and `make test` (every suite). Each does its own set-up.
SHELL := /bin/bash
UV_VERSION := 0.13.8
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-unit test-integration test-kube test-images testbed images bench lock clean

$(UV):
	$(PYTHON) -m pip install --user --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/vitpipeline demo --workdir demo-data

testbed:
	tests/testbed/build.sh

test: setup testbed
	$(PY) -m pytest tests -v --durations=15

test-unit: setup
	$(PY) -m pytest tests/unit tests/operator -q

test-integration: setup
	$(PY) -m pytest tests/integration -v

test-kube: setup testbed
	$(PY) -m pytest tests/kube -v

images: setup
	images/build.sh all

test-images: setup
	$(PY) -m pytest -m images tests/images tests/kube/test_operator_image.py -v

bench: setup testbed
	$(PY) -m bench.pipeline_bench
	$(PY) operator/bench_operator.py

lock:
	$(UV) lock

clean:
	rm -rf demo-data $(VENV)
