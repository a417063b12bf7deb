"""Caffemodels mutated field by field: archc's check never crashes, and what it calls a fit, real
Caffe loads without aborting.

Bounded for CI (400 files, half a minute on 2 cores); `make soak` runs the same mutator for as
many as it is asked. The mutations and the property live in tests/weightsfuzz.py, the Caffe child
in tests/caffe_child.py.
"""
from __future__ import annotations

import random
from collections import Counter

import weightsfuzz

DEADLINE_S = 10.0
CASES = 400


def test_mutated_caffemodels_keep_the_property(caffe_child, tmp_path):
    rng = random.Random(20240611)
    codes: Counter = Counter()
    for _ in range(CASES):
        case = weightsfuzz.random_case(rng)
        outcome = weightsfuzz.run_case(case, tmp_path, caffe_child, DEADLINE_S)
        assert outcome.problem is None, (f"{outcome.problem}\n--- {case.origin}, args {case.args}"
                                         f"\n--- stderr\n{outcome.stderr}")
        codes[outcome.code] += 1
    # the mutator is worth its name only if it makes fits for Caffe to load, refusals and errors
    assert min(codes[0], codes[1], codes[2]) >= CASES // 20, codes
    assert caffe_child.started == 1  # no Caffe child died


def test_the_unmutated_weights_fit_and_load(caffe_child, tmp_path):
    for net in weightsfuzz.NETS:
        case = weightsfuzz.Case({"w.caffemodel": weightsfuzz.base_weights(net),
                                 "net.prototxt": weightsfuzz.NETS[net]}, "net.prototxt", [], net)
        outcome = weightsfuzz.run_case(case, tmp_path, caffe_child, DEADLINE_S)
        assert (outcome.code, outcome.problem) == (0, None), outcome
