"""Layers that reduce the axes from one on: Reduction (`reduction_layer.cpp`), which sums or
averages them away, and ArgMax (`argmax_layer.cpp`), which keeps the top k indices (or values)."""
from __future__ import annotations

from typing import Any

from archc.ir.ops.base import (Op, Param, Primitive, Shape, ShapeError, axis_index, caffe,
                               definition, format_shape, prod)

REDUCTION_OPERATIONS = ("SUM", "ASUM", "SUMSQ", "MEAN")


@definition
class Reduction(Op):
    """Reduces the axes from `axis` on: their sum, sum of absolute values, sum of squares or mean,
    times coeff; the output keeps the axes before `axis` (none: a scalar)."""

    caffe_type = "Reduction"
    param_message = "reduction_param"

    operation: str = caffe("SUM")
    axis: int = caffe(0)
    coeff: float = caffe(1.0)

    primitives = (
        Primitive("reduction", (
            Param("operation", "choice", "sum", choices=tuple(o.lower() for o in REDUCTION_OPERATIONS)),
            Param("axis", "int", 0, doc="the first axis reduced"), Param("coeff", "number", 1.0)),
            lambda a: [Reduction(a["operation"].upper(), a["axis"], float(a["coeff"]))],
            "Reduction of the axes from axis on"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        return inputs[0][:axis_index(self.axis, inputs[0], "reduction")]

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(inputs[0][1:])


@definition
class ArgMax(Op):
    """The top_k indices (or with out_max_val, indices and values) along `axis`, or without an
    axis over each image's values, shaped N x (1 or 2) x top_k (x 1 ...)."""

    caffe_type = "ArgMax"
    param_message = "argmax_param"
    backward = False

    out_max_val: bool = caffe(False)
    top_k: int = caffe(1)
    axis: int | None = caffe(None)

    primitives = (
        Primitive("argmax", (Param("top_k", "int", 1), Param("axis", "int", doc="default: over each image"),
                             Param("max_val", "bool", False, doc="the values too, or alone along an axis")),
                  lambda a: [ArgMax(a["max_val"], a["top_k"], a["axis"])], "ArgMax"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        shape = inputs[0]
        if not shape:
            raise ShapeError("argmax needs an input with a batch axis, got a scalar")
        if self.top_k < 1:
            raise ShapeError(f"argmax top_k must be at least 1, got {self.top_k}")
        if self.axis is not None:
            axis = axis_index(self.axis, shape, "argmax")
            if self.top_k > shape[axis]:
                raise ShapeError(f"argmax top_k ({self.top_k}) exceeds axis {self.axis}'s size "
                                 f"({shape[axis]}): use a smaller top_k")
            return shape[:axis] + (self.top_k,) + shape[axis + 1:]
        if self.top_k > prod(shape[1:]):
            raise ShapeError(f"argmax top_k ({self.top_k}) exceeds the {prod(shape[1:])} values "
                             f"of each image ({format_shape(shape)}): use a smaller top_k")
        rest = (1,) * (max(len(shape), 3) - 3)
        return (shape[0], 2 if self.out_max_val else 1, self.top_k) + rest

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> ArgMax:
        p = layer.argmax_param
        return cls(out_max_val=p.out_max_val, top_k=p.top_k,
                   axis=p.axis if p.HasField("axis") else None)
