"""Val lists, journals and results files mutated: `archc eval` exits 0 with results that match the
val list, or 2 with one message; never an internal error or a hang.

Bounded for CI (300 cases, about ten seconds); `make soak` runs the same mutator for as many as it
is asked. The mutations and the property live in tests/evalfuzz.py.
"""
from __future__ import annotations

import random
from collections import Counter

import evalfuzz

DEADLINE_S = 10.0
CASES = 300


def test_mutated_eval_files_keep_the_property(tmp_path):
    dataset = evalfuzz.Dataset(tmp_path / "dataset")
    rng = random.Random(20240612)
    codes: Counter = Counter()
    for _ in range(CASES):
        case = evalfuzz.random_case(rng, dataset)
        outcome = evalfuzz.run_case(case, dataset, DEADLINE_S)
        assert outcome.problem is None, (f"{outcome.problem}\n--- {case.origin}\n{case.files}"
                                         f"\n--- stderr\n{outcome.stderr}")
        codes[case.origin, outcome.code] += 1
    # every kind of file is both accepted and refused now and then
    assert all(codes[f"{kind} mutated", code] >= 5 for kind in ("val", "journal", "results")
               for code in (0, 2)), codes


def test_an_unmutated_journal_resumes_to_the_uninterrupted_results(tmp_path):
    dataset = evalfuzz.Dataset(tmp_path / "dataset")
    case = evalfuzz.Case({"val.txt": dataset.val.encode(), "r.json.partial": dataset.journal},
                         "tiny.prototxt", [], "journal")
    assert evalfuzz.run_case(case, dataset, DEADLINE_S).problem is None
    assert dataset.results_path().read_bytes() == dataset.results
