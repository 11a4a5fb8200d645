# fleetvision: `make demo` runs the data engine on the embedded synthetic world; `make test` runs the tests.
# Both create .venv and install everything on first use.

PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= runs/demo

.PHONY: demo test test-all bench bench-install install clean-demo

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -q

test-all: $(STAMP)
	$(PYTHON) -m pytest -q -m ''

ifdef CLEAN
demo: clean-demo
endif

# The demo: every stage is the public CLI a user would type; finished stages are reused on a rerun.
demo: $(STAMP)
	$(BIN)/perception synth --rig configs/rigs/nuscenes_like_6cam.yaml --clips 2 --frames 20 --seed 1 --out $(DEMO)/data/preview
	$(BIN)/perception viz $(DEMO)/data/preview/clip_0000 --frame 10 --out $(DEMO)/preview.png
	$(BIN)/perception viz $(DEMO)/data/preview/clip_0000 --out $(DEMO)/preview.mp4
	@echo "demo: clips in $(DEMO)/data/preview, pictures: $(DEMO)/preview.png $(DEMO)/preview.mp4"

clean-demo:
	rm -rf $(DEMO)

# trackers/supervision/trackeval declare opencv-python, which clashes with opencv-python-headless: install them
# without their dependencies and add what they need by hand.
BENCH_NODEPS := trackers==2.6.1 supervision==0.31.2 trackeval==1.3.0
BENCH_DEPS := av defusedxml 'pyDeprecate<0.14' requests rich tabulate

bench-install: $(STAMP)
	$(PYTHON) -m pip install -q -e '.[dev,bench]' $(BENCH_DEPS)
	$(PYTHON) -m pip install -q --no-deps $(BENCH_NODEPS)

bench: bench-install
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(PYTHON) $$script || exit 1; done
