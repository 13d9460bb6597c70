# Set-up and the two entry points of the README: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime

.PHONY: demo test lint install tools triton-env benchmark train clean

# The runtime alone (what a scanner console runs: no torch), for the demo.
$(RUNTIME): pyproject.toml Makefile
	@echo "make: setting up $(VENV) with the runtime only (numpy, pydicom, ONNX Runtime, typer; no torch): about 20 s"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet -e .
	@touch $(RUNTIME)

# Everything: training (CPU torch 2.13.0, pinned: the wheel available offline), tests, linters, Triton client.
$(STAMP): pyproject.toml Makefile
	@echo "make: setting up $(VENV) with training, test, lint and Triton extras (CPU torch 2.13.0; about 1.7 GB, a few minutes)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet torch==2.13.0
	@$(BIN)/pip install --quiet -e '.[train,test,lint,triton]'
	@touch $(RUNTIME) $(STAMP)

install: $(STAMP)

demo: $(RUNTIME)
	@echo "make: scoring the bundled real CT slice and its degraded copy"
	$(BIN)/tfkt-edge demo

# dcmtk (storescu, echoscu) is the DICOM peer of the service tests, dicom3tools' dciodvfy verifies the SR,
# and headless Chromium renders the HTML report in its test; where they cannot be installed those tests skip.
APT_INSTALL = command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	{ apt-get install -y -q $(1) >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(1) >/dev/null 2>&1; }; }
tools:
	@command -v storescu >/dev/null || echo "make: installing dcmtk (the DICOM peer of the service tests) with apt-get"
	@command -v storescu >/dev/null || { $(call APT_INSTALL,dcmtk); } || \
	  echo "dcmtk not installed: the tests that use storescu will be skipped"
	@command -v dciodvfy >/dev/null || echo "make: installing dicom3tools (dciodvfy verifies the SR) with apt-get"
	@command -v dciodvfy >/dev/null || { $(call APT_INSTALL,dicom3tools); } || \
	  echo "dicom3tools not installed: the SR verification test will be skipped"
	@command -v chromium >/dev/null || echo "make: installing chromium (renders the HTML report in its test) with apt-get"
	@command -v chromium >/dev/null || { $(call APT_INSTALL,chromium); } || \
	  echo "chromium not installed: the report screenshot test will be skipped"

# The Triton server's own environment for the Triton tests: the tritonserver bundled in nvidia-pytriton
# runs its Python stub against numpy < 2, so it lives apart from .venv (numpy 2). Without it those tests skip.
TRITON_ENV := .venv-triton
$(TRITON_ENV)/.installed: Makefile
	@echo "make: setting up $(TRITON_ENV) (nvidia-pytriton's tritonserver, for the Triton tests)"
	$(PYTHON) -m venv $(TRITON_ENV) && $(TRITON_ENV)/bin/pip install --quiet nvidia-pytriton==0.7.0 onnxruntime \
	  && touch $@ || echo "nvidia-pytriton not installed: the Triton server tests will be skipped"
triton-env: $(TRITON_ENV)/.installed

test: $(STAMP) tools triton-env
	$(BIN)/python -m pytest -q -rs

# ruff over everything, mypy over the runtime package (settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check tfkt_edge train export tests benchmarks
	$(BIN)/mypy

benchmark: $(STAMP)
	bash benchmarks/run_cpu.sh

clean:
	rm -rf $(VENV) $(TRITON_ENV) build *.egg-info
