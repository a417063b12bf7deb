"""Elementwise functions and Softmax: one bottom, one top of the same shape, in place allowed."""
from __future__ import annotations

from typing import ClassVar

from archc.ir.ops.base import Op, Param, Primitive, Shape, ShapeError, axis_index, caffe, definition


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
