# dmlcourse — two commands:
#   make lab    install into .venv and open JupyterLab on the course
#   make test   install into .venv and run the unit tests and every notebook (nbval)
#
# Variables you may set:
#   PYTHON=python3.12       the interpreter that creates .venv (3.11 or newer)
#   TORCH_SPEC=torch==2.13.0
#   TORCH_INDEX=https://download.pytorch.org/whl/cu128   a CUDA (or .../cpu) build of torch
#   DMLCOURSE_QUICK=0       run the notebooks at full strength in `make test`

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

# The full datasets beside the project (as on the course's CI machines), if present.
SHARED_DATA := $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATA)/mnist),)
  export DMLCOURSE_DATA_DIR ?= $(SHARED_DATA)
endif

.PHONY: lab test install unit notebooks lint bench bench-quick clean-cache mini-data wheel-test

# Jupyter refuses to run as root unless told (containers, CI machines).
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)" \
		--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb

test: install lint unit notebooks bench-quick
	@echo "make test: all checks passed"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (dmlcourse)" >/dev/null
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check dmlcourse tests notebooks benchmarks scripts

unit: install
	DMLCOURSE_QUICK=$${DMLCOURSE_QUICK:-1} $(PY) -m pytest -p no:cacheprovider tests

notebooks: install
	DMLCOURSE_QUICK=$${DMLCOURSE_QUICK:-1} $(PY) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=900 --durations=0 notebooks

bench: install
	$(PY) benchmarks/run.py

bench-quick: install
	$(PY) benchmarks/run.py --quick

# build the wheel, install it outside the clone and use it (tests/test_packaging.py)
wheel-test: install
	$(PY) -m pytest -p no:cacheprovider -m slow tests/test_packaging.py

mini-data: install
	$(PY) scripts/make_mini.py

clean-cache:
	rm -rf data/cache
