"""InnerProduct (`inner_product_layer.cpp`), a fully connected layer over the axes from `axis` on,
and Embed (`embed_layer.cpp`), which looks rows of a learned table up by index."""
from __future__ import annotations

from typing import Any

from archc.ir.ops.base import (Op, Param, ParamBlob, Primitive, Shape, ShapeError, axis_index,
                               caffe, definition, prod, require, required)


@definition
class InnerProduct(Op):
    caffe_type = "InnerProduct"
    param_message = "inner_product_param"

    num_output: int = caffe()
    bias_term: bool = caffe(True)
    axis: int = caffe(1)
    #: weights stored K x num_output instead of num_output x K
    transpose: bool = caffe(False)

    primitives = (
        Primitive("fc", (required("num_output", "int"), Param("bias", "bool", True),
                         Param("axis", "int", 1, doc="the first axis it flattens"),
                         Param("transpose", "bool", False, doc="weights stored input x output")),
                  lambda a: [InnerProduct(a["num_output"], a["bias"], a["axis"], a["transpose"])],
                  "InnerProduct"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        axis = axis_index(self.axis, inputs[0], "inner product")
        if self.num_output <= 0:
            raise ShapeError(f"inner product num_output must be positive, got {self.num_output}")
        return inputs[0][:axis] + (self.num_output,)

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        flattened = prod(inputs[0][axis_index(self.axis, inputs[0], "inner product"):])
        shape = (flattened, self.num_output) if self.transpose else (self.num_output, flattened)
        weights = ParamBlob(shape, "he_normal")
        return (weights, ParamBlob((self.num_output,), "zeros")) if self.bias_term else (weights,)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        # one product of the flattened axes per index of the axes before them, per image
        return prod(inputs[0]) * self.num_output // inputs[0][0]

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> InnerProduct:
        require(layer.inner_product_param.HasField("num_output"), "num_output is required")
        return super().from_caffe(layer, dialect)


@definition
class Embed(Op):
    """Each input value, an integer in [0, input_dim), selects a row of num_output values."""

    caffe_type = "Embed"
    param_message = "embed_param"
    backward = False  # Caffe cannot backpropagate to the indices
    index_bottoms = (0,)

    num_output: int = caffe()
    input_dim: int = caffe()
    bias_term: bool = caffe(True)

    primitives = (
        Primitive("embed", (required("num_output", "int"),
                            required("input_dim", "int", "how many indices (rows)"),
                            Param("bias", "bool", True)),
                  lambda a: [Embed(a["num_output"], a["input_dim"], a["bias"])],
                  "Embed, a learned row per index"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        if self.num_output <= 0 or self.input_dim <= 0:
            raise ShapeError(f"embed num_output and input_dim must be positive, got "
                             f"{self.num_output} and {self.input_dim}")
        return inputs[0] + (self.num_output,)

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        weights = ParamBlob((self.input_dim, self.num_output), "he_normal")
        return (weights, ParamBlob((self.num_output,), "zeros")) if self.bias_term else (weights,)
