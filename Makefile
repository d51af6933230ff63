# Two commands: `make demo` and `make test`. Both create .venv when missing and install
# torch explicitly first (CPU build by default; e.g. TORCH_SPEC='torch==2.13.0' with a CUDA
# index for GPU users), then the project editable with its test extra.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.stratascope-installed

.PHONY: setup test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[test]"
	touch $@

setup: $(STAMP)

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/stratascope demo

clean:
	rm -rf $(VENV) .pytest_cache
