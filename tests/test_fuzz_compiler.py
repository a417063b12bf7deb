"""The compiler never crashes: generated, mutated and grammar-random inputs through the CLI.

Bounded for CI (a few hundred inputs, well under a minute on 2 cores); `make soak` runs the same
generators for 100,000 inputs. The property and the generators live in tests/archfuzz.py.
"""
from __future__ import annotations

import random

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import archfuzz
from conftest import REPO
from archc.dsl.parser import GRAMMAR_PATH

DEADLINE_S = 20.0
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> archfuzz.Workspace:
    return archfuzz.Workspace(tmp_path_factory.mktemp("fuzz") / "ws")


def _holds(case: archfuzz.Case, workspace: archfuzz.Workspace) -> None:
    outcome = archfuzz.run_case(case, workspace, DEADLINE_S)
    assert outcome.problem is None, (f"{outcome.problem}\n--- {case.origin}, args {case.args}\n"
                                     f"{case.files}\n--- stderr\n{outcome.stderr}")


@FUZZ
@given(rng=st.randoms(use_true_random=False), garbage=st.sampled_from([0.0, 0.03, 0.15]))
def test_generated_programs(workspace, rng: random.Random, garbage: float):
    text = archfuzz.ProgramGenerator(rng, garbage).program()
    _holds(archfuzz.Case({"fuzz.arch": text}, "fuzz.arch", [], "generated"), workspace)


@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_library(workspace, rng: random.Random):
    _holds(archfuzz.random_case(rng, workspace), workspace)


_GRAMMAR = lark.Lark(GRAMMAR_PATH.read_text(), parser="lalr", start=["start", "expr"], lexer="basic")


@FUZZ
@given(text=from_lark(_GRAMMAR, start="start"))
def test_grammar_random_text(workspace, text: str):
    _holds(archfuzz.Case({"fuzz.arch": text}, "fuzz.arch", [], "from_lark"), workspace)


def test_generated_programs_mostly_compile(workspace):
    """The generator is worth its name only if most of its clean programs are valid nets."""
    rng = random.Random(7)
    codes = [archfuzz.run_case(archfuzz.Case({"fuzz.arch": archfuzz.ProgramGenerator(rng, 0.0).program()},
                                             "fuzz.arch"), workspace, DEADLINE_S).code
             for _ in range(60)]
    assert codes.count(0) >= 45, codes


def test_compiles_in_one_process_keep_no_memory(capsys):
    """The fuzzers (and any tool calling archc in-process) compile thousands of models in one
    process. Turning the cyclic collector off during a compile, then moving what the compile
    made to the oldest generation (gc.freeze + unfreeze), made them grow by the compile's garbage
    every time: 190 KB per ResNeXt-50 here, until the soak's workers reached their memory limit."""
    import tracemalloc

    from archc.cli.main import main

    tracemalloc.start()
    try:
        traced = []
        for _ in range(20):
            assert main([str(REPO / "archs" / "resnext.arch"), "--depth", "50"]) == 0
            capsys.readouterr()
            traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert traced[-1] - traced[2] < 1_000_000, [size // 1024 for size in traced]
