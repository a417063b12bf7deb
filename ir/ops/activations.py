"""Elementwise functions (Caffe's neuron layers, `neuron_layer.cpp` and beside it) and Softmax:
one bottom, one top of the same shape, in place allowed.

Caffe computes every one of them correctly in place; the language writes the input blob by
default (as the model zoo writes ReLU) only for those whose backward pass is right in place too,
that is those whose gradient reads the output, not the input.
"""
from __future__ import annotations

import math
from typing import ClassVar

from archc.ir.ops.base import (Op, Param, ParamBlob, Primitive, Shape, ShapeError, at_most_4d,
                               axis_index, caffe, channels, definition, float32, prod, required)


@definition
class ReLU(Op):
    caffe_type: ClassVar[str] = "ReLU"
    param_message: ClassVar[str] = "relu_param"
    in_place_ok: ClassVar[bool] = True

    negative_slope: float = caffe(0.0)

    primitives: ClassVar = (
        Primitive("relu", (Param("slope", "number", 0.0),),
                  lambda a: [ReLU(float(a["slope"]))], "ReLU (leaky with slope)", in_place=True),
    )


@definition
class Sigmoid(Op):
    caffe_type: ClassVar[str] = "Sigmoid"
    in_place_ok: ClassVar[bool] = True

    primitives: ClassVar = (
        Primitive("sigmoid", (), lambda a: [Sigmoid()], "Sigmoid, 1 / (1 + exp(-x))", in_place=True),
    )


@definition
class TanH(Op):
    caffe_type: ClassVar[str] = "TanH"
    in_place_ok: ClassVar[bool] = True

    primitives: ClassVar = (
        Primitive("tanh", (), lambda a: [TanH()], "TanH, the hyperbolic tangent", in_place=True),
    )


@definition
class ELU(Op):
    caffe_type: ClassVar[str] = "ELU"
    param_message: ClassVar[str] = "elu_param"
    in_place_ok: ClassVar[bool] = True

    alpha: float = caffe(1.0)

    primitives: ClassVar = (
        Primitive("elu", (Param("alpha", "number", 1.0),), lambda a: [ELU(float(a["alpha"]))],
                  "ELU, x > 0 ? x : alpha * (exp(x) - 1)", in_place=True),
    )


@definition
class AbsVal(Op):
    caffe_type: ClassVar[str] = "AbsVal"
    in_place_ok: ClassVar[bool] = True

    primitives: ClassVar = (Primitive("absval", (), lambda a: [AbsVal()], "AbsVal, |x|"),)


@definition
class BNLL(Op):
    caffe_type: ClassVar[str] = "BNLL"
    in_place_ok: ClassVar[bool] = True

    primitives: ClassVar = (
        Primitive("bnll", (), lambda a: [BNLL()], "BNLL (softplus), log(1 + exp(x))"),
    )


@definition
class Power(Op):
    caffe_type: ClassVar[str] = "Power"
    param_message: ClassVar[str] = "power_param"
    in_place_ok: ClassVar[bool] = True

    power: float = caffe(1.0)
    scale: float = caffe(1.0)
    shift: float = caffe(0.0)

    primitives: ClassVar = (
        Primitive("power", (Param("power", "number", 1.0), Param("scale", "number", 1.0),
                            Param("shift", "number", 0.0)),
                  lambda a: [Power(float(a["power"]), float(a["scale"]), float(a["shift"]))],
                  "Power, (shift + scale * x) ** power"),
    )

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:])


def _check_base(op: str, base: float, zero_log_ok: bool) -> None:
    """Caffe's Exp and Log take a base of -1 (e) or one whose logarithm (of the float32 value
    Caffe holds) is finite, and non-zero for Log, which divides by it."""
    value = float32(base)
    if value == -1:
        return
    if not (value > 0 and math.isfinite(math.log(value)) and (zero_log_ok or value != 1)):
        allowed = "positive and finite" if zero_log_ok else "positive, finite and not 1"
        raise ShapeError(f"{op} base must be -1 (e) or {allowed}, got {base}")


@definition
class Exp(Op):
    caffe_type: ClassVar[str] = "Exp"
    param_message: ClassVar[str] = "exp_param"
    in_place_ok: ClassVar[bool] = True

    base: float = caffe(-1.0)
    scale: float = caffe(1.0)
    shift: float = caffe(0.0)

    primitives: ClassVar = (
        Primitive("exp", (Param("base", "number", -1.0, doc="-1 is e"), Param("scale", "number", 1.0),
                          Param("shift", "number", 0.0)),
                  lambda a: [Exp(float(a["base"]), float(a["scale"]), float(a["shift"]))],
                  "Exp, base ** (shift + scale * x)", in_place=True),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        _check_base("exp", self.base, zero_log_ok=True)
        return inputs[0]


@definition
class Log(Op):
    caffe_type: ClassVar[str] = "Log"
    param_message: ClassVar[str] = "log_param"
    in_place_ok: ClassVar[bool] = True

    base: float = caffe(-1.0)
    scale: float = caffe(1.0)
    shift: float = caffe(0.0)

    primitives: ClassVar = (
        Primitive("log", (Param("base", "number", -1.0, doc="-1 is e"), Param("scale", "number", 1.0),
                          Param("shift", "number", 0.0)),
                  lambda a: [Log(float(a["base"]), float(a["scale"]), float(a["shift"]))],
                  "Log, the logarithm of (shift + scale * x)"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        _check_base("log", self.base, zero_log_ok=False)
        return inputs[0]


@definition
class Threshold(Op):
    caffe_type: ClassVar[str] = "Threshold"
    param_message: ClassVar[str] = "threshold_param"
    in_place_ok: ClassVar[bool] = True
    backward: ClassVar[bool] = False

    threshold: float = caffe(0.0)

    primitives: ClassVar = (
        Primitive("threshold", (Param("threshold", "number", 0.0),),
                  lambda a: [Threshold(float(a["threshold"]))], "Threshold, x > threshold ? 1 : 0"),
    )


@definition
class Clip(Op):
    caffe_type: ClassVar[str] = "Clip"
    param_message: ClassVar[str] = "clip_param"
    in_place_ok: ClassVar[bool] = True

    min: float = caffe()
    max: float = caffe()

    primitives: ClassVar = (
        Primitive("clip", (required("min", "number"), required("max", "number")),
                  lambda a: [Clip(float(a["min"]), float(a["max"]))], "Clip, x limited to [min, max]"),
    )


@definition
class Swish(Op):
    caffe_type: ClassVar[str] = "Swish"
    param_message: ClassVar[str] = "swish_param"
    in_place_ok: ClassVar[bool] = True

    beta: float = caffe(1.0)

    primitives: ClassVar = (
        Primitive("swish", (Param("beta", "number", 1.0),), lambda a: [Swish(float(a["beta"]))],
                  "Swish, x * sigmoid(beta * x)", in_place=True),
    )


@definition
class PReLU(Op):
    caffe_type: ClassVar[str] = "PReLU"
    param_message: ClassVar[str] = "prelu_param"
    in_place_ok: ClassVar[bool] = True

    channel_shared: bool = caffe(False)

    primitives: ClassVar = (
        Primitive("prelu", (Param("shared", "bool", False, doc="one slope for all channels"),),
                  lambda a: [PReLU(a["shared"])], "PReLU, a learned slope per channel",
                  in_place=True),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        channels(at_most_4d("prelu", inputs[0]))
        return inputs[0]

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        return (ParamBlob(() if self.channel_shared else (channels(inputs[0]),), "quarters"),)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:])


@definition
class Dropout(Op):
    caffe_type: ClassVar[str] = "Dropout"
    param_message: ClassVar[str] = "dropout_param"
    in_place_ok: ClassVar[bool] = True

    ratio: float = caffe(0.5, "dropout_ratio")

    primitives: ClassVar = (
        Primitive("dropout", (Param("ratio", "number", 0.5),),
                  lambda a: [Dropout(float(a["ratio"]))], "Dropout", in_place=True),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        if not 0 <= self.ratio < 1:
            raise ShapeError(f"dropout ratio must be in [0, 1), got {self.ratio}")
        return inputs[0]


@definition
class Softmax(Op):
    caffe_type: ClassVar[str] = "Softmax"
    param_message: ClassVar[str] = "softmax_param"
    in_place_ok: ClassVar[bool] = True

    axis: int = caffe(1)

    primitives: ClassVar = (
        Primitive("softmax", (Param("axis", "int", 1),), lambda a: [Softmax(a["axis"])], "Softmax"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        axis_index(self.axis, inputs[0], "softmax")
        return inputs[0]
