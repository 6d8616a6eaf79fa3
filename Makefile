# The course in two commands:
#   make lab    set up .venv (first time only) and open the course in JupyterLab
#   make test   set up .venv (first time only) and run every test
#   make browser-test   only the end-to-end test in headless Chromium (part of `make test`)
#   make notebooks      regenerate notebooks/ from solutions/ (maintainers)
#   make bench          benchmarks against zuko and nflows (docs/benchmarks.md)
#   make grading        an nbgrader course folder, grading/ (docs/instructors.md)
#   make site           the course's static site, build/site/html (site-test: built and read)
#
# TORCH is the PyTorch the course was tested with. On this project's machines pip
# takes a CPU build of it from local disk. On a Linux laptop, get a CPU build (a
# few hundred MB instead of several GB) from PyTorch's CPU wheel index:
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
# macOS and Windows wheels on PyPI are CPU builds already.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nfcourse-installed
# The course's JupyterLab settings (lab/settings/: no "news" pop-up over the lesson),
# installed as defaults of .venv's own JupyterLab only: a learner's own JupyterLab
# settings are not touched, and still win over these.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/nfcourse.json

.PHONY: lab test browser-test bench grading site site-test hub-test lint notebooks clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LAB_SETTINGS): lab/settings/overrides.d/nfcourse.json $(STAMP)
	mkdir -p $(@D)
	cp $< $@

# Opens the first lesson, in the browser and at the URL it prints (default_url);
# the file browser shows the whole course.
# (--allow-root only when run as root, e.g. in a container.)
lab: $(STAMP) $(LAB_SETTINGS)
	$(PY) -m jupyterlab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_welcome.ipynb

# Unit tests and the exercise notebooks (stubs report "not done yet"), then the
# solution notebooks with strict checks (a wrong solution fails). nbval runs each
# notebook top to bottom in a fresh kernel; one torch thread per process.
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=300
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile

test: $(STAMP)
	$(PYTEST) -m "not site" --ignore=tests/test_hub.py tests notebooks $(NBVAL)
	NFCOURSE_STRICT=1 $(PYTEST) solutions $(NBVAL)

# Lessons 00 (as `make lab` opens it), 01, 03 and 04 in JupyterLab in the system's headless
# Chromium (apt-get install chromium); screenshots in test-artifacts/browser/. Skips when
# Chromium is missing.
browser-test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/test_browser.py -v

# Benchmarks against zuko and nflows, written to docs/benchmarks.md (several hours on 2 cores).
# An nbgrader course folder for a graded course: grading/source/NN_slug/ with the grading
# metadata, and grading/nbgrader_config.py (docs/instructors.md, "A graded course").
grading: $(STAMP)
	$(PY) -m nfcourse nbgrader grading

# The course's static site (website/build.py): every solution notebook executed, the
# README's lesson map, the instructors' guide and the benchmarks; no internet needed.
site: $(STAMP)
	$(PY) -m pip install --quiet -e '.[site]'
	$(PY) website/build.py build/site

# The site built, then read in headless Chromium (tests/test_site.py; CI runs it).
site-test: site
	OMP_NUM_THREADS=1 $(PY) -m pytest -m site tests/test_site.py

# A JupyterHub with two learners in headless Chromium (tests/test_hub.py, docs/hub.md); it
# needs the hub extra, so it is not part of `make test`.
hub-test: $(STAMP)
	$(PY) -m pip install --quiet -e '.[hub]'
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/test_hub.py -v

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	OMP_NUM_THREADS=1 $(PY) -m benchmarks

# Regenerate the exercise notebooks after editing solutions/ (learners' edits are backed up).
notebooks: $(STAMP)
	$(PY) -m nfcourse generate

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
