"""Prototxts mutated field by field: archc's checks before Caffe never crash, and what they
accept, real Caffe sets up and runs forward without aborting.

Bounded for CI (2,000 nets, half a minute on 2 cores); `make soak` runs the same mutator for as
many as it is asked. The mutations and the property live in tests/protofuzz.py, the Caffe child
in tests/caffe_child.py.
"""
from __future__ import annotations

import random
from collections import Counter

import protofuzz
from test_op_definitions import CASES as CASES_OF_OPS

DEADLINE_S = 20.0
CASES = 2000


def test_mutated_prototxts_keep_the_property(caffe_child, tmp_path):
    rng = random.Random(20261202)
    codes: Counter = Counter()
    for _ in range(CASES):
        case = protofuzz.random_case(rng)
        outcome = protofuzz.run_case(case, tmp_path, caffe_child, DEADLINE_S)
        assert outcome.problem is None, (f"{outcome.problem}\n--- {case.origin}\n"
                                         f"{case.files[case.model]}\n--- {outcome.stderr}")
        codes[outcome.code] += 1
    # the mutator is worth its name only if it makes nets Caffe runs and nets archc refuses
    assert min(codes[0], codes[1] + codes[2]) >= CASES // 10, codes
    assert caffe_child.started == 1  # no Caffe child died


def test_every_seed_runs_or_is_refused_for_want_of_a_cpu_forward_pass(caffe_child, tmp_path):
    for seed, (_, _, op, _) in zip(protofuzz.seeds(), CASES_OF_OPS, strict=True):
        case = protofuzz.Case({"net.prototxt": seed}, "net.prototxt")
        outcome = protofuzz.run_case(case, tmp_path, caffe_child, DEADLINE_S)
        assert outcome.problem is None, (seed, outcome)
        if op.cpu_forward():
            assert outcome.code == 0, (seed, outcome)
        else:
            assert "Caffe cannot run the forward pass" in outcome.stderr, (seed, outcome)
