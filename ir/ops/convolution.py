"""Convolution (`conv_layer.cpp`, `base_conv_layer.cpp`)."""
from __future__ import annotations

from typing import Any, ClassVar

from archc.ir.ops.base import (INT_MAX, Op, Param, ParamBlob, Primitive, Shape, ShapeError,
                               checked_4d, definition, pair, prod, read_field, read_pair, require, required,
                               truncated, write_pair)


@definition
class Convolution(Op):
    caffe_type: ClassVar[str] = "Convolution"
    param_message: ClassVar[str] = "convolution_param"

    num_output: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    group: int = 1
    dilation: int = 1
    bias_term: bool = True

    primitives: ClassVar = (
        Primitive("conv", (
            required("num_output", "int"), required("kernel", "pair", "side, or [h, w]"),
            Param("stride", "pair", 1), Param("pad", "pair", 0), Param("group", "int", 1),
            Param("dilation", "int", 1), Param("bias", "bool", True)),
            lambda a: [Convolution(a["num_output"], *pair(a["kernel"]), *pair(a["stride"]),
                                   *pair(a["pad"]), a["group"], a["dilation"], a["bias"])],
            "Convolution"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        (n, c, h, w) = checked_4d("convolution", inputs[0])
        if self.num_output <= 0:
            raise ShapeError(f"convolution num_output must be positive, got {self.num_output}")
        if min(self.kernel_h, self.kernel_w) <= 0 or min(self.stride_h, self.stride_w) <= 0:
            raise ShapeError("convolution kernel and stride must be positive")
        if min(self.pad_h, self.pad_w) < 0 or self.dilation <= 0:
            raise ShapeError("convolution pad must be >= 0 and dilation > 0")
        if self.group <= 0 or c % self.group or self.num_output % self.group:
            raise ShapeError(
                f"convolution group {self.group} must divide both the input channels ({c}) "
                f"and num_output ({self.num_output})")
        extent = (self.dilation * (self.kernel_h - 1) + 1, self.dilation * (self.kernel_w - 1) + 1)
        padded = (h + 2 * self.pad_h, w + 2 * self.pad_w)
        if max(padded) > INT_MAX:
            raise ShapeError(f"the padded input {padded[0]} x {padded[1]} overflows Caffe's 32-bit sizes")
        # Caffe divides with C's truncation: a window overhanging the padded input by less than
        # a stride still gives one output (the overhang reads zeros).
        out_h = truncated(padded[0] - extent[0], self.stride_h) + 1
        out_w = truncated(padded[1] - extent[1], self.stride_w) + 1
        if min(out_h, out_w) <= 0:
            raise ShapeError(
                f"the {extent[0]} x {extent[1]} convolution window is larger than the padded "
                f"{padded[0]} x {padded[1]} input: use a larger input size, a smaller kernel or "
                f"dilation, or more padding")
        # im2col unrolls every window of the image into one buffer, itself a Caffe blob
        columns = c * self.kernel_h * self.kernel_w * out_h * out_w
        if columns > INT_MAX:
            raise ShapeError(f"the convolution's im2col buffer ({columns} values) exceeds the "
                             f"{INT_MAX} a Caffe blob holds: use a smaller input size or kernel")
        return (n, self.num_output, out_h, out_w)

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        c = inputs[0][1]
        weights = ParamBlob((self.num_output, c // self.group, self.kernel_h, self.kernel_w),
                            "he_normal")
        return (weights, ParamBlob((self.num_output,), "zeros")) if self.bias_term else (weights,)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        c = inputs[0][1]
        return prod(output[1:]) * (c // self.group) * self.kernel_h * self.kernel_w

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"num_output": self.num_output}
        write_pair(fields, "kernel_size", self.kernel_h, self.kernel_w, None)
        write_pair(fields, "stride", self.stride_h, self.stride_w, 1)
        write_pair(fields, "pad", self.pad_h, self.pad_w, 0)
        if self.group != 1:
            fields["group"] = self.group
        if self.dilation != 1:
            fields["dilation"] = self.dilation
        if not self.bias_term:
            fields["bias_term"] = False
        return fields

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Convolution:
        p = layer.convolution_param
        require(p.HasField("num_output"), "num_output is required")
        num_output, group = read_field(p, "num_output"), read_field(p, "group")
        require(group >= 1, "group must be at least 1 (Caffe divides the channels by it)")
        require(p.axis == 1 and not p.force_nd_im2col, "only 2-D convolution over axis 1 is supported")
        kernel = read_pair(p, "kernel_size", None)
        require(kernel is not None, "kernel_size (or kernel_h and kernel_w) is required")
        dilation = read_pair(p, "dilation", 1)
        require(dilation[0] == dilation[1],
                "different vertical and horizontal dilation is not supported")
        (stride_h, stride_w), (pad_h, pad_w) = read_pair(p, "stride", 1), read_pair(p, "pad", 0)
        return cls(num_output=num_output, kernel_h=kernel[0], kernel_w=kernel[1],
                   stride_h=stride_h, stride_w=stride_w, pad_h=pad_h, pad_w=pad_w,
                   group=group, dilation=dilation[0], bias_term=p.bias_term)
