# fastmer: the two commands of the README, and a few helpers.
#
#   make demo    create .venv, install everything, build the extension, run `fastmer demo`
#   make test    same setup, then the test suite
#   make test-timm   the timm-backbone tests, in .venv-timm (torch 2.14.1 + torchvision 0.29.1)
#   make bench   same setup, then the benchmarks (bench/RESULTS.md records the figures)
#   make gpu-check   on a GPU machine, with its own Python (no venv, no network): build in
#                place, CUDA tests, compute-sanitizer, GPU benchmarks -> $(GPU_CHECK_OUT)/
#
# Variables: PYTHON (interpreter for the venv), TORCH (the torch requirement; on Linux
# PyPI's torch has CUDA, or use TORCH_INDEX=https://download.pytorch.org/whl/cpu for a
# CPU-only build), FASTMER_CUDA=auto|on|off and TORCH_CUDA_ARCH_LIST for the extension.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_OUT ?= demo_out
GPU_PYTHON ?= python3
GPU_CHECK_OUT ?= gpu_check

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
INDEX_FLAG := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
NATIVE_SOURCES := $(shell find csrc cmake -type f) CMakeLists.txt pyproject.toml

# timm backbones (the `timm` extra) need a torchvision built for the installed torch, and
# PyPI has none for the CPU torch 2.13.0 wheel of $(VENV): their tests run in a second venv
# with torch 2.14.1 and torchvision 0.29.1 (CUDA builds, ~5.5 GB; this project's machines
# hold them on local disk). `make test` skips them there; CI runs both (.ci/run).
TIMM_VENV ?= .venv-timm
TIMM_TORCH ?= torch==2.14.1 torchvision==0.29.1
TIMM_BIN := $(TIMM_VENV)/bin
TIMM_PIP := $(TIMM_BIN)/python -m pip

.PHONY: demo test test-timm bench gpu-check install clean

demo: $(VENV)/.installed
	$(BIN)/fastmer demo --out $(DEMO_OUT) --overwrite

test: $(VENV)/.installed
	$(BIN)/python -m pytest

test-timm: $(TIMM_VENV)/.installed
	$(TIMM_BIN)/python -m pytest tests/models/test_timm.py

bench: $(VENV)/.installed
	$(BIN)/python -m pytest bench -o python_files='bench_*.py' --benchmark-only \
		--benchmark-columns=min,median,iqr,rounds --benchmark-sort=name

# The GPU machine's own Python holds torch+CUDA and the build tools; see bench/gpu_check/run.py.
gpu-check:
	$(GPU_PYTHON) bench/gpu_check/run.py --out "$(GPU_CHECK_OUT)"

install: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first (the extension compiles against it), then the build tools, because the
# extension is built without build isolation.
$(VENV)/.build-deps: $(BIN)/python
	$(PIP) install --upgrade pip
	$(PIP) install $(INDEX_FLAG) "$(TORCH)"
	$(PIP) install "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	touch $@

# The dali extra is empty where DALI has no wheels (it installs on Linux x86-64 only).
$(VENV)/.installed: $(VENV)/.build-deps $(NATIVE_SOURCES)
	$(PIP) install --no-build-isolation -e ".[test,dali,ray]"
	$(BIN)/python -c "import fastmer.ops._native as n; r = n.unavailable_reason(); assert r is None, r"
	touch $@

# Its own build folder (the extension compiles against this venv's torch), CPU kernels only.
$(TIMM_VENV)/.installed: $(NATIVE_SOURCES)
	test -x $(TIMM_BIN)/python || $(PYTHON) -m venv $(TIMM_VENV)
	$(TIMM_PIP) install --upgrade pip
	$(TIMM_PIP) install $(TIMM_TORCH)
	$(TIMM_PIP) install "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	FASTMER_CUDA=off $(TIMM_PIP) install --no-build-isolation -C build-dir=build/timm-{wheel_tag} -e ".[test,timm]"
	$(TIMM_BIN)/python -c "import timm, torchvision; print('timm', timm.__version__, 'torchvision', torchvision.__version__)"
	touch $@

clean:
	rm -rf build $(DEMO_OUT) $(GPU_CHECK_OUT) .pytest_cache .benchmarks
