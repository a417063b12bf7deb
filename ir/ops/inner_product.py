"""InnerProduct (`inner_product_layer.cpp`): a fully connected layer over axes 1 and after."""
from __future__ import annotations

from typing import Any, ClassVar

from archc.ir.ops.base import (Op, Param, ParamBlob, Primitive, Shape, ShapeError, caffe,
                               definition, prod, require, required)


@definition
class InnerProduct(Op):
    caffe_type: ClassVar[str] = "InnerProduct"
    param_message: ClassVar[str] = "inner_product_param"

    num_output: int = caffe()
    bias_term: bool = caffe(True)

    primitives: ClassVar = (
        Primitive("fc", (required("num_output", "int"), Param("bias", "bool", True)),
                  lambda a: [InnerProduct(a["num_output"], a["bias"])], "InnerProduct"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        if self.num_output <= 0:
            raise ShapeError(f"inner product num_output must be positive, got {self.num_output}")
        if len(inputs[0]) < 2:
            raise ShapeError("inner product needs an input with a batch axis and at least one more")
        return (inputs[0][0], self.num_output)

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        weights = ParamBlob((self.num_output, prod(inputs[0][1:])), "he_normal")
        return (weights, ParamBlob((self.num_output,), "zeros")) if self.bias_term else (weights,)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return self.num_output * prod(inputs[0][1:])

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> InnerProduct:
        p = layer.inner_product_param
        require(p.HasField("num_output"), "num_output is required")
        require(p.axis == 1 and not p.transpose, "only axis 1 without transpose is supported")
        return super().from_caffe(layer, dialect)
