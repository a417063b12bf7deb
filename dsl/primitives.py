"""The built-in ops of the language: their signatures, and the IR ops each one emits.

A primitive is data: a name, typed parameters with defaults, and a builder from checked arguments
to a chain of `ir.ops` (``bn`` emits BatchNorm then Scale). Merges (concat, sum, ...) join the
branches that follow them. Adding an op is adding an entry to `PRIMITIVES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from archc.ir import ops


class ArgumentError(ValueError):
    """An argument has the wrong type or value; the message names it."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # int | number | bool | pair | ints | numbers | one of `choices`
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Primitive:
    name: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any]], list[ops.Op]]
    doc: str
    merge: bool = False
    #: writes its input blob unless told `inplace = false` (as the model zoo's files do)
    in_place: bool = False


def _required(name: str, kind: str, doc: str = "") -> Param:
    return Param(name, kind, required=True, doc=doc)


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _conv(a: dict[str, Any]) -> list[ops.Op]:
    (kh, kw), (sh, sw), (ph, pw) = _pair(a["kernel"]), _pair(a["stride"]), _pair(a["pad"])
    return [ops.Convolution(a["num_output"], kh, kw, sh, sw, ph, pw, a["group"], a["dilation"],
                            a["bias"])]


def _pool(method: str) -> Callable[[dict[str, Any]], list[ops.Op]]:
    def build(a: dict[str, Any]) -> list[ops.Op]:
        if a["global"]:
            if a["kernel"] is not None or _pair(a["stride"]) != (1, 1) or _pair(a["pad"]) != (0, 0):
                raise ArgumentError("global = true pools the whole plane: drop kernel, stride "
                                    "and pad")
            return [ops.Pooling(method, global_pooling=True)]
        if a["kernel"] is None:
            raise ArgumentError("missing argument 'kernel' (or pass global = true)")
        (kh, kw), (sh, sw), (ph, pw) = _pair(a["kernel"]), _pair(a["stride"]), _pair(a["pad"])
        return [ops.Pooling(method, kh, kw, sh, sw, ph, pw, rounding=a["round"])]
    return build


_POOL_PARAMS = (
    Param("kernel", "pair", doc="window side, or [h, w]"),
    Param("stride", "pair", 1),
    Param("pad", "pair", 0),
    Param("round", "choice", "ceil", choices=ops.ROUNDINGS, doc="output size rounding"),
    Param("global", "bool", False, doc="pool the whole plane"),
)

_PRIMITIVES = (
    Primitive("conv", (
        _required("num_output", "int"), _required("kernel", "pair", "side, or [h, w]"),
        Param("stride", "pair", 1), Param("pad", "pair", 0), Param("group", "int", 1),
        Param("dilation", "int", 1), Param("bias", "bool", True)),
        _conv, "Convolution"),
    Primitive("bn", (Param("eps", "number", 1e-5),),
              lambda a: [ops.BatchNorm(True, float(a["eps"])), ops.Scale(bias_term=True)],
              "BatchNorm (global stats) then Scale with bias: two layers, two names", in_place=True),
    Primitive("batchnorm", (Param("eps", "number", 1e-5), Param("global_stats", "bool", True)),
              lambda a: [ops.BatchNorm(a["global_stats"], float(a["eps"]))], "BatchNorm alone",
              in_place=True),
    Primitive("scale", (Param("bias", "bool", True),),
              lambda a: [ops.Scale(bias_term=a["bias"])], "Scale alone", in_place=True),
    Primitive("relu", (Param("slope", "number", 0.0),),
              lambda a: [ops.ReLU(float(a["slope"]))], "ReLU (leaky with slope)", in_place=True),
    Primitive("maxpool", _POOL_PARAMS, _pool("MAX"), "MAX Pooling"),
    Primitive("avepool", _POOL_PARAMS, _pool("AVE"), "AVE Pooling"),
    Primitive("fc", (_required("num_output", "int"), Param("bias", "bool", True)),
              lambda a: [ops.InnerProduct(a["num_output"], a["bias"])], "InnerProduct"),
    Primitive("dropout", (Param("ratio", "number", 0.5),),
              lambda a: [ops.Dropout(float(a["ratio"]))], "Dropout", in_place=True),
    Primitive("softmax", (Param("axis", "int", 1),),
              lambda a: [ops.Softmax(a["axis"])], "Softmax"),
    Primitive("reshape", (_required("dims", "ints", "0 copies an axis, -1 infers one"),),
              lambda a: [ops.Reshape(tuple(a["dims"]))], "Reshape"),
    Primitive("flatten", (Param("axis", "int", 1),),
              lambda a: [ops.Flatten(a["axis"])], "Flatten"),
    Primitive("concat", (Param("axis", "int", 1),),
              lambda a: [ops.Concat(a["axis"])], "Concat of the branches, in order", merge=True),
    Primitive("sum", (Param("coeff", "numbers", (), doc="one coefficient per branch"),),
              lambda a: [ops.Eltwise("SUM", tuple(float(c) for c in a["coeff"]))],
              "elementwise sum of the branches", merge=True),
    Primitive("product", (), lambda a: [ops.Eltwise("PROD")],
              "elementwise product of the branches", merge=True),
    Primitive("maximum", (), lambda a: [ops.Eltwise("MAX")],
              "elementwise maximum of the branches", merge=True),
)

PRIMITIVES: dict[str, Primitive] = {p.name: p for p in _PRIMITIVES}

#: Keyword arguments every primitive takes: where its output goes.
PLACEMENT_PARAMS = (
    Param("top", "string", doc="name of the output blob (default: the layer's name)"),
    Param("inplace", "bool", doc="write the input blob (default for bn, scale, relu, dropout)"),
)


def check_argument(param: Param, value: Any) -> Any:
    """Check one argument against its declared kind; returns the value or raises ArgumentError."""
    ok = {
        "int": _is_int(value),
        "number": _is_number(value),
        "bool": isinstance(value, bool),
        "string": isinstance(value, str),
        "pair": _is_int(value) or (isinstance(value, list) and len(value) == 2
                                   and all(_is_int(v) for v in value)),
        "ints": isinstance(value, list) and all(_is_int(v) for v in value),
        "numbers": isinstance(value, (list, tuple)) and all(_is_number(v) for v in value),
        "choice": value in param.choices,
    }[param.kind]
    if not ok:
        expected = {
            "int": "an integer", "number": "a number", "bool": "true or false", "string": "a string",
            "pair": "an integer or a list of two integers [h, w]", "ints": "a list of integers",
            "numbers": "a list of numbers",
            "choice": " or ".join(f'"{c}"' for c in param.choices),
        }[param.kind]
        raise ArgumentError(f"argument '{param.name}' must be {expected}")
    if not _fits_caffe_field(value):
        raise ArgumentError(f"argument '{param.name}' must fit Caffe's 32-bit fields (integers "
                            f"below 2**31 in magnitude, numbers below 3.4e38)")
    return value


# Caffe's layer parameters are 32-bit protobuf fields: larger values would not load.
_INT32_LIMIT = 2 ** 31
_FLOAT32_MAX = 3.4028234663852886e38


def _fits_caffe_field(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_fits_caffe_field(v) for v in value)
    if _is_int(value):
        return abs(value) < _INT32_LIMIT
    if isinstance(value, float):
        return abs(value) <= _FLOAT32_MAX
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
