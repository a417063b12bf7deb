"""Elementwise functions (Caffe's neuron layers, `neuron_layer.cpp` and beside it) and Softmax:
one bottom, one top of the same shape, in place allowed.

Caffe computes every one of them correctly in place; the language writes the input blob by
default (as the model zoo writes ReLU) only for those whose backward pass is right in place too,
that is those whose gradient reads the output, not the input.
"""
from __future__ import annotations

import math

from archc.ir.ops.base import (Op, Param, ParamBlob, Primitive, Shape, ShapeError, at_most_4d,
                               axis_index, caffe, channels, definition, float32, prod, required)


@definition
class ReLU(Op):
    caffe_type = "ReLU"
    param_message = "relu_param"
    in_place_ok = True

    negative_slope: float = caffe(0.0)

    primitives = (
        Primitive("relu", (Param("slope", "number", 0.0),),
                  lambda a: [ReLU(float(a["slope"]))], "ReLU (leaky with slope)", in_place=True),
    )


@definition
class Sigmoid(Op):
    caffe_type = "Sigmoid"
    in_place_ok = True

    primitives = (
        Primitive("sigmoid", (), lambda a: [Sigmoid()], "Sigmoid, 1 / (1 + exp(-x))", in_place=True),
    )


@definition
class TanH(Op):
    caffe_type = "TanH"
    in_place_ok = True

    primitives = (
        Primitive("tanh", (), lambda a: [TanH()], "TanH, the hyperbolic tangent", in_place=True),
    )


@definition
class ELU(Op):
    caffe_type = "ELU"
    param_message = "elu_param"
    in_place_ok = True

    alpha: float = caffe(1.0)

    primitives = (
        Primitive("elu", (Param("alpha", "number", 1.0),), lambda a: [ELU(float(a["alpha"]))],
                  "ELU, x > 0 ? x : alpha * (exp(x) - 1)", in_place=True),
    )


@definition
class AbsVal(Op):
    caffe_type = "AbsVal"
    in_place_ok = True

    primitives = (Primitive("absval", (), lambda a: [AbsVal()], "AbsVal, |x|"),)


@definition
class BNLL(Op):
    caffe_type = "BNLL"
    in_place_ok = True

    primitives = (
        Primitive("bnll", (), lambda a: [BNLL()], "BNLL (softplus), log(1 + exp(x))"),
    )


@definition
class Power(Op):
    caffe_type = "Power"
    param_message = "power_param"
    in_place_ok = True

    power: float = caffe(1.0)
    scale: float = caffe(1.0)
    shift: float = caffe(0.0)

    primitives = (
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
    caffe_type = "Exp"
    param_message = "exp_param"
    in_place_ok = True

    base: float = caffe(-1.0)
    scale: float = caffe(1.0)
    shift: float = caffe(0.0)

    primitives = (
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
    caffe_type = "Log"
    param_message = "log_param"
    in_place_ok = True

    base: float = caffe(-1.0)
    scale: float = caffe(1.0)
    shift: float = caffe(0.0)

    primitives = (
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
    caffe_type = "Threshold"
    param_message = "threshold_param"
    in_place_ok = True
    backward = False

    threshold: float = caffe(0.0)

    primitives = (
        Primitive("threshold", (Param("threshold", "number", 0.0),),
                  lambda a: [Threshold(float(a["threshold"]))], "Threshold, x > threshold ? 1 : 0"),
    )


@definition
class Clip(Op):
    caffe_type = "Clip"
    param_message = "clip_param"
    in_place_ok = True

    min: float = caffe()
    max: float = caffe()

    primitives = (
        Primitive("clip", (required("min", "number"), required("max", "number")),
                  lambda a: [Clip(float(a["min"]), float(a["max"]))], "Clip, x limited to [min, max]"),
    )


@definition
class Swish(Op):
    caffe_type = "Swish"
    param_message = "swish_param"
    in_place_ok = True

    beta: float = caffe(1.0)

    primitives = (
        Primitive("swish", (Param("beta", "number", 1.0),), lambda a: [Swish(float(a["beta"]))],
                  "Swish, x * sigmoid(beta * x)", in_place=True),
    )


@definition
class PReLU(Op):
    caffe_type = "PReLU"
    param_message = "prelu_param"
    in_place_ok = True

    channel_shared: bool = caffe(False)

    primitives = (
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
    caffe_type = "Dropout"
    param_message = "dropout_param"
    in_place_ok = True

    ratio: float = caffe(0.5, "dropout_ratio")

    primitives = (
        Primitive("dropout", (Param("ratio", "number", 0.5),),
                  lambda a: [Dropout(float(a["ratio"]))], "Dropout", in_place=True),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        if not 0 <= self.ratio < 1:
            raise ShapeError(f"dropout ratio must be in [0, 1), got {self.ratio}")
        return inputs[0]


@definition
class Softmax(Op):
    caffe_type = "Softmax"
    param_message = "softmax_param"
    in_place_ok = True

    axis: int = caffe(1)

    primitives = (
        Primitive("softmax", (Param("axis", "int", 1),), lambda a: [Softmax(a["axis"])], "Softmax"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        axis_index(self.axis, inputs[0], "softmax")
        return inputs[0]
