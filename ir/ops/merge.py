"""Layers that merge several bottoms into one top: Concat (`concat_layer.cpp`) and Eltwise
(`eltwise_layer.cpp`). In the language they merge the branches that follow them."""
from __future__ import annotations

from typing import Any

from archc.ir.ops.base import (Op, Param, Primitive, Shape, ShapeError, axis_index, caffe,
                               definition, format_shape, prod, require)


@definition
class Concat(Op):
    caffe_type = "Concat"
    param_message = "concat_param"
    max_bottoms = None

    axis: int = caffe(1)

    primitives = (
        Primitive("concat", (Param("axis", "int", 1),), lambda a: [Concat(a["axis"])],
                  "Concat of the branches, in order", merge=True),
    )

    def is_view(self, bottoms: int, tops: int) -> bool:
        return bottoms == 1  # Caffe shares a lone input's memory instead of copying it

    def output_shape(self, inputs: list[Shape]) -> Shape:
        first = inputs[0]
        axis = axis_index(self.axis, first, "concat")
        for index, shape in enumerate(inputs[1:], start=2):
            same_rank = len(shape) == len(first)
            if not same_rank or any(a != b for i, (a, b) in enumerate(zip(first, shape)) if i != axis):
                raise ShapeError(
                    f"concat inputs must agree on every axis but {self.axis}: input 1 is "
                    f"{format_shape(first)}, input {index} is {format_shape(shape)}")
        out = list(first)
        out[axis] = sum(shape[axis] for shape in inputs)
        return tuple(out)

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Concat:
        p = layer.concat_param
        require(not (p.HasField("axis") and p.HasField("concat_dim")),
                "give axis or concat_dim, not both")
        # concat_dim is the deprecated spelling of axis.
        return cls(axis=p.concat_dim if p.HasField("concat_dim") else p.axis)


ELTWISE_OPERATIONS = ("PROD", "SUM", "MAX")


@definition
class Eltwise(Op):
    caffe_type = "Eltwise"
    param_message = "eltwise_param"
    min_bottoms = 2
    max_bottoms = None

    operation: str = caffe("SUM", always=True)
    coeff: tuple[float, ...] = caffe(())

    primitives = (
        Primitive("sum", (Param("coeff", "numbers", (), doc="one coefficient per branch"),),
                  lambda a: [Eltwise("SUM", tuple(float(c) for c in a["coeff"]))],
                  "elementwise sum of the branches", merge=True),
        Primitive("product", (), lambda a: [Eltwise("PROD")],
                  "elementwise product of the branches", merge=True),
        Primitive("maximum", (), lambda a: [Eltwise("MAX")],
                  "elementwise maximum of the branches", merge=True),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        first = inputs[0]
        for index, shape in enumerate(inputs[1:], start=2):
            if shape != first:
                raise ShapeError(
                    f"{self.operation.lower()} inputs must have the same shape: input 1 is "
                    f"{format_shape(first)}, input {index} is {format_shape(shape)}; project the "
                    f"branch that differs (e.g. a 1x1 convolution with the right width and stride)")
        if self.coeff and (self.operation != "SUM" or len(self.coeff) != len(inputs)):
            raise ShapeError(
                f"eltwise coefficients need operation SUM and one per input: "
                f"{len(self.coeff)} given for {len(inputs)} inputs")
        return first

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:]) * (len(inputs) - 1)
