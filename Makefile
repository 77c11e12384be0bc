# Two commands do everything on a fresh machine:
#   make run    set up, get MovieLens-100k and the ICD code trees, run suites/quickstart.yaml, print the table
#   make test   set up, get MovieLens-100k and the ICD code trees, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH := $(VENV)/bin/bench
# The CPU build of torch (a bare `torch` requirement would pull a multi-GB CUDA build).
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test install data ui clean

run: data
	$(BENCH) run suites/quickstart.yaml

test: data
	$(PY) -m pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,ray,postgres]"
	touch $@

data: install
	$(BENCH) data get ml-100k
	$(BENCH) data get icd-codes

ui: install
	$(BENCH) ui

clean:
	rm -rf .bench_cache mlflow.db
