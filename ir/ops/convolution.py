"""Convolution (`conv_layer.cpp`), Deconvolution (`deconv_layer.cpp`), both set up by
`base_conv_layer.cpp`, and Im2col (`im2col_layer.cpp`), the unrolling convolution computes with:
2-D over axis 1 of an N x C x H x W input."""
from __future__ import annotations

from typing import Any, ClassVar

from archc.ir.ops.base import (INT_MAX, Op, Param, ParamBlob, Primitive, Shape, ShapeError,
                               checked_4d, definition, pair, prod, read_field, read_pair, require,
                               required, supported, truncated, write_pair)


def _check_window(op: str, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
                  dilation: int) -> None:
    if min(kernel) <= 0 or min(stride) <= 0:
        raise ShapeError(f"{op} kernel and stride must be positive")
    if min(pad) < 0 or dilation <= 0:
        raise ShapeError(f"{op} pad must be >= 0 and dilation > 0")


def _extent(kernel: int, dilation: int) -> int:
    return dilation * (kernel - 1) + 1


def _windows(op: str, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
             pad: tuple[int, int], dilation: int) -> tuple[int, int]:
    """How many windows fit each padded axis, as Caffe counts them (convolution and im2col)."""
    padded = (size[0] + 2 * pad[0], size[1] + 2 * pad[1])
    if max(padded) > INT_MAX:
        raise ShapeError(f"the padded input {padded[0]} x {padded[1]} overflows Caffe's 32-bit sizes")
    extent = (_extent(kernel[0], dilation), _extent(kernel[1], dilation))
    # Caffe divides with C's truncation: a window overhanging the padded input by less than
    # a stride still gives one output (the overhang reads zeros).
    out = (truncated(padded[0] - extent[0], stride[0]) + 1, truncated(padded[1] - extent[1], stride[1]) + 1)
    if min(out) <= 0:
        raise ShapeError(
            f"the {extent[0]} x {extent[1]} {op} window is larger than the padded "
            f"{padded[0]} x {padded[1]} input: use a larger input size, a smaller kernel or "
            f"dilation, or more padding")
    return out


def _check_buffer(op: str, values: int) -> None:
    """Caffe unrolls one image's windows into a buffer that is itself a blob."""
    if values > INT_MAX:
        raise ShapeError(f"the {op}'s im2col buffer ({values} values) exceeds the {INT_MAX} a "
                         f"Caffe blob holds: use a smaller input size or kernel")


def _read_window(p: Any) -> dict[str, int]:
    """Kernel, stride, pad and dilation of a ConvolutionParameter, as an op's fields."""
    supported(p.axis == 1 and not p.force_nd_im2col, "only 2-D convolution over axis 1 is supported")
    kernel = read_pair(p, "kernel_size", None)
    require(kernel is not None, "kernel_size (or kernel_h and kernel_w) is required")
    dilation = read_pair(p, "dilation", 1)
    supported(dilation[0] == dilation[1], "different vertical and horizontal dilation is not supported")
    (stride_h, stride_w), (pad_h, pad_w) = read_pair(p, "stride", 1), read_pair(p, "pad", 0)
    return {"kernel_h": kernel[0], "kernel_w": kernel[1], "stride_h": stride_h,
            "stride_w": stride_w, "pad_h": pad_h, "pad_w": pad_w, "dilation": dilation[0]}


def _write_window(fields: dict, op: _Convolutional | Im2col, group: int = 1) -> dict:
    """`fields` with the window's settings added, in Caffe's spelling, defaults left out."""
    write_pair(fields, "kernel_size", op.kernel_h, op.kernel_w, None)
    write_pair(fields, "stride", op.stride_h, op.stride_w, 1)
    write_pair(fields, "pad", op.pad_h, op.pad_w, 0)
    if group != 1:
        fields["group"] = group
    if op.dilation != 1:
        fields["dilation"] = op.dilation
    return fields


@definition
class _Convolutional(Op):
    """What Convolution and Deconvolution share: fields, set-up checks, weights, spelling."""

    param_message = "convolution_param"
    reverse: ClassVar[bool] = False

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

    def _checked_input(self, inputs: list[Shape]) -> Shape:
        name = self.caffe_type.lower()
        (n, c, h, w) = checked_4d(name, inputs[0])
        if self.num_output <= 0:
            raise ShapeError(f"{name} num_output must be positive, got {self.num_output}")
        _check_window(name, (self.kernel_h, self.kernel_w), (self.stride_h, self.stride_w),
                      (self.pad_h, self.pad_w), self.dilation)
        if self.group <= 0 or c % self.group or self.num_output % self.group:
            raise ShapeError(
                f"{name} group {self.group} must divide both the input channels ({c}) "
                f"and num_output ({self.num_output})")
        return (n, c, h, w)

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        # (output channels, input channels / group, kh, kw) of the convolution Caffe computes,
        # which for a deconvolution runs from its output to its input (`reverse_dimensions`)
        c = inputs[0][1]
        outer, inner = (c, self.num_output) if self.reverse else (self.num_output, c)
        weights = ParamBlob((outer, inner // self.group, self.kernel_h, self.kernel_w), "he_normal")
        return (weights, ParamBlob((self.num_output,), "zeros")) if self.bias_term else (weights,)

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields = _write_window({"num_output": self.num_output}, self, self.group)
        if not self.bias_term:
            fields["bias_term"] = False
        return fields

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> _Convolutional:
        p = layer.convolution_param
        require(p.HasField("num_output"), "num_output is required")
        group = read_field(p, "group")
        require(group >= 1, "group must be at least 1 (Caffe divides the channels by it)")
        return cls(num_output=read_field(p, "num_output"), group=group, bias_term=p.bias_term,
                   **_read_window(p))


_CONVOLUTIONAL_PARAMS = (
    required("num_output", "int"), required("kernel", "pair", "side, or [h, w]"),
    Param("stride", "pair", 1), Param("pad", "pair", 0), Param("group", "int", 1),
    Param("dilation", "int", 1), Param("bias", "bool", True))


def _convolutional_fields(a: dict[str, Any]) -> tuple:
    """The fields, in order, of the op a `conv` or `deconv` statement's arguments describe."""
    return (a["num_output"], *pair(a["kernel"]), *pair(a["stride"]), *pair(a["pad"]), a["group"],
            a["dilation"], a["bias"])


@definition
class Convolution(_Convolutional):
    caffe_type = "Convolution"

    primitives = (
        Primitive("conv", _CONVOLUTIONAL_PARAMS, lambda a: [Convolution(*_convolutional_fields(a))],
                  "Convolution"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        (n, c, h, w) = self._checked_input(inputs)
        out_h, out_w = _windows("convolution", (h, w), (self.kernel_h, self.kernel_w),
                                (self.stride_h, self.stride_w), (self.pad_h, self.pad_w), self.dilation)
        _check_buffer("convolution", c * self.kernel_h * self.kernel_w * out_h * out_w)
        return (n, self.num_output, out_h, out_w)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        c = inputs[0][1]
        return prod(output[1:]) * (c // self.group) * self.kernel_h * self.kernel_w


@definition
class Deconvolution(_Convolutional):
    """The transpose of a convolution: each input value spreads a kernel over the output."""

    caffe_type = "Deconvolution"
    reverse = True

    primitives = (
        Primitive("deconv", _CONVOLUTIONAL_PARAMS,
                  lambda a: [Deconvolution(*_convolutional_fields(a))], "Deconvolution"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        (n, c, h, w) = self._checked_input(inputs)
        out_h = self.stride_h * (h - 1) + _extent(self.kernel_h, self.dilation) - 2 * self.pad_h
        out_w = self.stride_w * (w - 1) + _extent(self.kernel_w, self.dilation) - 2 * self.pad_w
        if min(out_h, out_w) <= 0:
            raise ShapeError(f"deconvolution output would be {out_h} x {out_w} from a {h} x {w} "
                             f"input: use less padding or a larger kernel or stride")
        _check_buffer("deconvolution", self.num_output * self.kernel_h * self.kernel_w * h * w)
        return (n, self.num_output, out_h, out_w)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(inputs[0][1:]) * (self.num_output // self.group) * self.kernel_h * self.kernel_w


@definition
class Im2col(Op):
    """Every kernel-sized window of the input, unrolled into the channel axis."""

    caffe_type = "Im2col"
    param_message = "convolution_param"

    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dilation: int = 1

    primitives = (
        Primitive("im2col", (required("kernel", "pair", "side, or [h, w]"), Param("stride", "pair", 1),
                             Param("pad", "pair", 0), Param("dilation", "int", 1)),
                  lambda a: [Im2col(*pair(a["kernel"]), *pair(a["stride"]), *pair(a["pad"]),
                                    a["dilation"])],
                  "Im2col, each window's values along the channels"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        (n, c, h, w) = checked_4d("im2col", inputs[0])
        kernel = (self.kernel_h, self.kernel_w)
        _check_window("im2col", kernel, (self.stride_h, self.stride_w), (self.pad_h, self.pad_w),
                      self.dilation)
        out_h, out_w = _windows("im2col", (h, w), kernel, (self.stride_h, self.stride_w),
                                (self.pad_h, self.pad_w), self.dilation)
        return (n, c * self.kernel_h * self.kernel_w, out_h, out_w)

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return _write_window({}, self)

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Im2col:
        return cls(**_read_window(layer.convolution_param))
