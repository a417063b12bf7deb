"""The built-in ops of the language, gathered from the op definitions, and argument checking.

Each op definition (`archc.ir.ops`) declares the DSL spellings that emit it (`primitives`):
a name, typed parameters with defaults, and a builder from checked arguments to IR ops. Merges
(concat, sum, ...) join the branches that follow them.
"""
from __future__ import annotations

from typing import Any, Callable

from archc.ir.ops import OPS, ArgumentError, Param, Primitive
from archc.ir.ops.base import FLOAT32_MAX, FLOAT32_MIN_NORMAL

PRIMITIVES: dict[str, Primitive] = {
    primitive.name: primitive for op in OPS.values() for primitive in op.primitives}


def ops_for_caffe_type(name: str) -> str | None:
    """What to write for a Caffe layer type spelt as an op (`InnerProduct` -> "fc"), any case."""
    for caffe_type, op in OPS.items():
        if caffe_type.lower() == name.lower() and op.primitives:
            names = [primitive.name for primitive in op.primitives]
            text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
            return text + (" (merges of branches)" if op.primitives[0].merge else "")
    return None

#: Keyword arguments every primitive takes: where its output goes.
PLACEMENT_PARAMS = (
    Param("top", "names", doc="name of the output blob (default: the layer's name), or a list "
                              "of names for an op that writes several"),
    Param("inplace", "bool", doc="write the input blob (default for bn, scale, relu, dropout)"),
)


def check_argument(param: Param, value: Any) -> Any:
    """Check one argument against its declared kind; returns the value or raises ArgumentError."""
    if not _FITS_KIND[param.kind](param, value):
        expected = " or ".join(f'"{c}"' for c in param.choices) if param.kind == "choice" else \
            _EXPECTED[param.kind]
        raise ArgumentError(f"argument '{param.name}' must be {expected}")
    if not _fits_caffe_field(value):
        raise ArgumentError(f"argument '{param.name}' must fit Caffe's 32-bit fields (integers "
                            f"below 2**31 in magnitude, numbers 0 or from 1.2e-38 to 3.4e38 in magnitude)")
    return value


# Each argument kind's test: only the declared kind's runs (running every test for every
# argument was a measurable part of elaborating a large net).
_FITS_KIND: dict[str, Callable[[Param, Any], bool]] = {
    "int": lambda param, value: _is_int(value),
    "number": lambda param, value: _is_number(value),
    "bool": lambda param, value: isinstance(value, bool),
    "string": lambda param, value: isinstance(value, str),
    "names": lambda param, value: isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)),
    "pair": lambda param, value: _is_int(value) or (
        isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)),
    "ints": lambda param, value: isinstance(value, list) and all(_is_int(v) for v in value),
    "numbers": lambda param, value: isinstance(value, (list, tuple)) and all(_is_number(v) for v in value),
    "choice": lambda param, value: value in param.choices,
}
_EXPECTED = {
    "int": "an integer", "number": "a number", "bool": "true or false", "string": "a string",
    "names": "a string or a list of strings",
    "pair": "an integer or a list of two integers [h, w]", "ints": "a list of integers",
    "numbers": "a list of numbers",
}


# Caffe's layer parameters are 32-bit protobuf fields: larger values would not load.
_INT32_LIMIT = 2 ** 31


def _fits_caffe_field(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_fits_caffe_field(v) for v in value)
    if _is_int(value):
        return abs(value) < _INT32_LIMIT
    if isinstance(value, float):  # computed values too: a literal is checked where it is written
        return value == 0 or FLOAT32_MIN_NORMAL <= abs(value) <= FLOAT32_MAX
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
