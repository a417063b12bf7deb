"""Normalisations and affine maps: BatchNorm (`batch_norm_layer.cpp`), Scale (`scale_layer.cpp`)
and Bias (`bias_layer.cpp`), which broadcast a learned blob or a second bottom over the input,
LRN (`lrn_layer.cpp`) and MVN (`mvn_layer.cpp`)."""
from __future__ import annotations

import math
from typing import Any

from archc.ir.ops.base import (Op, Param, ParamBlob, Primitive, Shape, ShapeError, at_most_4d,
                               axis_index, caffe, channels, checked_4d, definition, format_shape,
                               prod, short_float)


@definition
class BatchNorm(Op):
    caffe_type = "BatchNorm"
    param_message = "batch_norm_param"
    in_place_ok = True

    use_global_stats: bool = True
    eps: float = 1e-5

    primitives = (
        Primitive("bn", (Param("eps", "number", 1e-5),),
                  lambda a: [BatchNorm(True, float(a["eps"])), Scale(bias_term=True)],
                  "BatchNorm (global stats) then Scale with bias: two layers, two names",
                  in_place=True),
        Primitive("batchnorm", (Param("eps", "number", 1e-5), Param("global_stats", "bool", True)),
                  lambda a: [BatchNorm(a["global_stats"], float(a["eps"]))], "BatchNorm alone",
                  in_place=True),
    )

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        c = channels(inputs[0])
        # mean, variance, and the moving-average factor Caffe divides both by
        return (ParamBlob((c,), "zeros"), ParamBlob((c,), "ones"), ParamBlob((1,), "ones"))

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:])

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"use_global_stats": self.use_global_stats}
        if not math.isclose(self.eps, 1e-5, rel_tol=1e-9):
            fields["eps"] = self.eps
        return fields

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> BatchNorm:
        p = layer.batch_norm_param
        # Caffe's default for use_global_stats is "phase == TEST", and a deploy net runs in TEST.
        use_global_stats = p.use_global_stats if p.HasField("use_global_stats") else True
        return cls(use_global_stats=use_global_stats, eps=short_float(p.eps))


def broadcast_operand(op: str, inputs: list[Shape], axis: int, num_axes: int) -> Shape:
    """The shape of what Scale or Bias applies to its input, checked as Caffe checks it: with one
    bottom a learned blob over `num_axes` axes of the input from `axis` (-1: to the last axis);
    with two, the second bottom, which must equal the input's axes from `axis` (a scalar needs
    no axis)."""
    data = inputs[0]
    if len(inputs) == 1:
        start = axis_index(axis, data, op)
        if num_axes < -1:
            raise ShapeError(f"{op} num_axes must be -1 (to the last axis) or at least 0, got {num_axes}")
        end = len(data) if num_axes == -1 else start + num_axes
        if end > len(data):
            raise ShapeError(f"{op} spans {num_axes} axes from axis {axis}, past the last axis of "
                             f"its {len(data)}-D input: use fewer axes or an earlier axis")
        return data[start:end]
    operand = inputs[1]
    start = axis_index(axis, data, op) if operand else 0
    if data[start:start + len(operand)] != operand:
        raise ShapeError(f"{op}'s second input ({format_shape(operand)}) must equal the first "
                         f"input's axes from axis {axis} ({format_shape(data[start:])}): reshape it, "
                         f"or set axis")
    return operand


@definition
class Scale(Op):
    """Multiplies by a learned blob or by a second bottom, broadcast over the other axes."""

    caffe_type = "Scale"
    param_message = "scale_param"
    in_place_ok = True
    max_bottoms = 2

    axis: int = caffe(1)
    num_axes: int = caffe(1)
    bias_term: bool = caffe(False)

    primitives = (
        Primitive("scale", (Param("bias", "bool", True), Param("axis", "int", 1),
                            Param("num_axes", "int", 1, doc="-1: to the last axis")),
                  lambda a: [Scale(a["axis"], a["num_axes"], a["bias"])],
                  "Scale alone (per channel by default); of [x, operand], by the operand",
                  in_place=True, reads="[x, operand]"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        broadcast_operand("scale", inputs, self.axis, self.num_axes)
        if self.bias_term:  # Caffe's inner Bias layer takes the axis even for a scalar
            axis_index(self.axis, inputs[0], "scale")
        return inputs[0]

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        shape = broadcast_operand("scale", inputs, self.axis, self.num_axes)
        scale = (ParamBlob(shape, "ones"),) if len(inputs) == 1 else ()
        return scale + ((ParamBlob(shape, "zeros"),) if self.bias_term else ())

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:])


@definition
class Bias(Op):
    """Adds a learned blob or a second bottom, broadcast over the other axes."""

    caffe_type = "Bias"
    param_message = "bias_param"
    in_place_ok = True
    max_bottoms = 2

    axis: int = caffe(1)
    num_axes: int = caffe(1)

    primitives = (
        Primitive("bias", (Param("axis", "int", 1), Param("num_axes", "int", 1, doc="-1: to the last axis")),
                  lambda a: [Bias(a["axis"], a["num_axes"])],
                  "Bias (per channel by default); of [x, operand], the operand's",
                  in_place=True, reads="[x, operand]"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        broadcast_operand("bias", inputs, self.axis, self.num_axes)
        return inputs[0]

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        if len(inputs) == 2:
            return ()
        return (ParamBlob(broadcast_operand("bias", inputs, self.axis, self.num_axes), "zeros"),)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:])


LRN_REGIONS = ("ACROSS_CHANNELS", "WITHIN_CHANNEL")


@definition
class LRN(Op):
    """Local response normalisation: x / (k + alpha / n * (sum of squares over n neighbours)) ** beta,
    the neighbours across channels or within the channel's plane (n x n)."""

    caffe_type = "LRN"
    param_message = "lrn_param"

    local_size: int = caffe(5)
    alpha: float = caffe(1.0)
    beta: float = caffe(0.75)
    norm_region: str = caffe("ACROSS_CHANNELS")
    k: float = caffe(1.0)

    primitives = (
        Primitive("lrn", (
            Param("size", "int", 5, doc="neighbours, odd"), Param("alpha", "number", 1.0),
            Param("beta", "number", 0.75), Param("k", "number", 1.0),
            Param("region", "choice", "across", choices=("across", "within"),
                  doc="across channels, or within each channel's plane")),
            lambda a: [LRN(a["size"], float(a["alpha"]), float(a["beta"]),
                           "ACROSS_CHANNELS" if a["region"] == "across" else "WITHIN_CHANNEL",
                           float(a["k"]))],
            "LRN"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        checked_4d("lrn", inputs[0])
        if self.local_size <= 0 or self.local_size % 2 == 0:
            raise ShapeError(f"lrn local_size must be odd (Caffe centres the window), got {self.local_size}")
        # WITHIN_CHANNEL pools with pad (size - 1) / 2 at stride 1: the plane keeps its size.
        return inputs[0]

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        window = self.local_size if self.norm_region == "ACROSS_CHANNELS" else self.local_size ** 2
        return prod(output[1:]) * window


@definition
class MVN(Op):
    """Mean-variance normalisation over each channel's plane (or each image's, across channels)."""

    caffe_type = "MVN"
    param_message = "mvn_param"
    in_place_ok = True

    normalize_variance: bool = caffe(True)
    across_channels: bool = caffe(False)
    eps: float = caffe(1e-9)

    primitives = (
        Primitive("mvn", (Param("variance", "bool", True, doc="divide by the standard deviation too"),
                          Param("across_channels", "bool", False), Param("eps", "number", 1e-9)),
                  lambda a: [MVN(a["variance"], a["across_channels"], float(a["eps"]))],
                  "MVN, mean-variance normalisation"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        # Caffe shapes the top N x C x H x W from its legacy accessors: missing axes become 1.
        shape = at_most_4d("mvn", inputs[0])
        return shape + (1,) * (4 - len(shape))

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:])
