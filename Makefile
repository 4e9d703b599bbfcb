# dmlcourse — two commands:
#   make lab    install into .venv, copy the learner notebooks into my-notebooks/ (never
#               overwriting your work) and open JupyterLab there
#   make test   install into .venv and run the unit tests and every notebook (nbval), and the
#               browser tests (make test-browser) where Debian's chromium is installed
#
# For instructors and maintainers:
#   make solutions   the solution versions of the notebooks, in solutions/
#   make edit        JupyterLab on the sources (notebooks/NN_name.py, opened as notebooks by jupytext)
#   make site        the course as a static website, build/site/index.html
#   make device-bundle  what benchmarks/device_check.sh needs on a lent GPU machine (see there)
#
# Variables you may set:
#   PYTHON=python3.12       the interpreter that creates .venv (3.11 or newer)
#   TORCH_SPEC=torch==2.13.0
#   TORCH_INDEX=https://download.pytorch.org/whl/cu128   a CUDA (or .../cpu) build of torch
#   DMLCOURSE_QUICK=0       run the notebooks at full strength in `make test`
#   LEARNER_DIR=my-notebooks   where `make lab` keeps your own copies
#   TEST_WORKERS=2          processes for the unit tests and the notebooks in `make test` (default 1;
#                           pytest-xdist, each notebook whole in one process, its cells in order; each
#                           process gets OMP_NUM_THREADS = cores / TEST_WORKERS, at least 1)
#   LEARNER_WORKERS=1       the learner notebooks one at a time (default 2, or TEST_WORKERS if above 1: they
#                           run on the cache the solutions left, so two kernels share two cores well)

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

LEARNER_DIR ?= my-notebooks
CHROMIUM ?= /usr/bin/chromium
COURSE := $(PY) scripts/course.py
TEST_WORKERS ?= 1
# OMP_NUM_THREADS for one of $(1) processes sharing the machine's cores (at least 1)
threads_each = OMP_NUM_THREADS=$$(( $$(nproc) / $(1) > 1 ? $$(nproc) / $(1) : 1 ))
ifeq ($(filter-out 0 1,$(TEST_WORKERS)),)
XDIST :=
PER_WORKER :=
else
# two processes with two torch threads each on two cores wait on each other's threads: one thread each
XDIST := -n $(TEST_WORKERS) --dist loadfile
PER_WORKER := $(call threads_each,$(TEST_WORKERS))
endif
NBVAL_ARGS := -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 --durations=0
NBVAL := $(PY) -m pytest $(XDIST) $(NBVAL_ARGS)
# The learner versions run on the cache the solutions left: mostly imports, loading and drawing, one
# Python thread each, so two at a time share two cores well (LEARNER_WORKERS=1: one after the other).
LEARNER_WORKERS ?= $(if $(filter-out 0 1,$(TEST_WORKERS)),$(TEST_WORKERS),2)
ifeq ($(filter-out 0 1,$(LEARNER_WORKERS)),)
LEARNER_NBVAL := $(PY) -m pytest $(NBVAL_ARGS)
else
LEARNER_NBVAL := $(call threads_each,$(LEARNER_WORKERS)) $(PY) -m pytest -n $(LEARNER_WORKERS) --dist loadfile \
	$(NBVAL_ARGS)
endif
# when this make started: `make test` reports the time of everything but the browser tests
START_TIME := $(shell date +%s)

.PHONY: site lab edit solutions test test-browser install unit notebooks lint bench bench-quick \
	clean-cache mini-data wheel-test device-bundle

# Jupyter refuses to run as root unless told (containers, CI machines).
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(COURSE) lab "$(LEARNER_DIR)"
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(abspath $(LEARNER_DIR))" \
		--LabApp.default_url=/lab/tree/00_start_here.ipynb

solutions: install
	$(COURSE) build solution solutions

# The course as a static website in build/site/ (executed: full mode on a GPU, quick mode otherwise).
# SITE_FLAGS="--only 00 05" for some lectures, "--solutions" for the instructors' build.
site: install
	$(PY) scripts/site.py $(SITE_FLAGS)

edit: install
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) --ServerApp.root_dir="$(CURDIR)/notebooks"

test: install lint unit notebooks bench-quick
	@echo "make test: install, lint, unit tests, notebooks and bench-quick took $$(( $$(date +%s) - $(START_TIME) )) s"
	@if [ -x "$(CHROMIUM)" ]; then $(MAKE) --no-print-directory test-browser; \
	else echo "browser tests skipped: no Chromium (apt-get install chromium)"; fi
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
	$(COURSE) check

unit: install
	$(PER_WORKER) DMLCOURSE_QUICK=$${DMLCOURSE_QUICK:-1} $(PY) -m pytest -p no:cacheprovider $(XDIST) \
		--ignore=tests/browser tests

# Every notebook in JupyterLab in a real (headless) Chromium: Run All, then the figures and widgets as
# the browser shows them (tests/browser/; screenshots in build/browser-shots/). Needs Debian's chromium.
test-browser: install
	DMLCOURSE_QUICK=$${DMLCOURSE_QUICK:-1} DMLCOURSE_CHROMIUM="$(CHROMIUM)" \
		$(PY) -m pytest -p no:cacheprovider -v --durations=10 tests/browser

# Both versions of every notebook: the solutions (every check passes, every claim asserted), then the
# learner versions (they run to the end with the stubs; the cache makes their training nearly free).
notebooks: install
	rm -rf build/notebooks
	$(COURSE) build solution build/notebooks/solution
	$(COURSE) build learner build/notebooks/learner
	$(PER_WORKER) DMLCOURSE_QUICK=$${DMLCOURSE_QUICK:-1} DMLCOURSE_EXERCISES_STRICT=1 $(NBVAL) build/notebooks/solution
	DMLCOURSE_QUICK=$${DMLCOURSE_QUICK:-1} $(LEARNER_NBVAL) build/notebooks/learner

bench: install
	$(PY) benchmarks/run.py

bench-quick: install
	$(PY) benchmarks/run.py --quick

# build the wheel, install it outside the clone and use it (tests/test_packaging.py)
wheel-test: install
	$(PY) -m pytest -p no:cacheprovider -m slow tests/test_packaging.py

# A lent GPU machine has torch, numpy, scikit-learn and matplotlib, and reaches no registry: carry the
# full datasets (.gpu-data/) and the pure-Python packages benchmarks/device_check.sh needs (.whl/site/)
DEVICE_PACKAGES := pytest pluggy iniconfig pygments packaging tqdm
device-bundle: install
	@test -d "$(DMLCOURSE_DATA_DIR)/mnist" || { echo "device-bundle: no full datasets (DMLCOURSE_DATA_DIR)"; exit 1; }
	rm -rf .gpu-data .whl
	mkdir -p .gpu-data .whl/site
	cp -r "$(DMLCOURSE_DATA_DIR)/mnist" "$(DMLCOURSE_DATA_DIR)/fashion-mnist" .gpu-data/
	$(PY) -m pip download -q --no-deps --only-binary=:all: -d .whl/wheels \
		$$($(PY) -c "import importlib.metadata as m; print(*(f'{p}=={m.version(p)}' for p in '$(DEVICE_PACKAGES)'.split()))")
	for w in .whl/wheels/*.whl; do $(PY) -m zipfile -e "$$w" .whl/site; done
	rm -rf .whl/wheels
	du -sh .gpu-data .whl

mini-data: install
	$(PY) scripts/make_mini.py

clean-cache:
	rm -rf data/cache
