"""Typed layer configurations and Caffe's own rules for each: output shapes, parameter blobs, MACs.

Each op class mirrors one Caffe layer type. Shape rules follow Caffe's C++ (`conv_layer.cpp`,
`pooling_layer.cpp`, ...) exactly, so a shape the IR reports is the shape Caffe allocates.
`OPS` maps a Caffe type name to its class; codegen and the prototxt importer both go through it.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import ClassVar

Shape = tuple[int, ...]
INT_MAX = 2 ** 31 - 1  # Caffe's sizes and blob counts are C ints


class ShapeError(ValueError):
    """An op cannot be applied to its input shapes; the message says why and how to fix it."""


def _prod(values) -> int:
    return math.prod(values)


def format_shape(shape: Shape) -> str:
    return " x ".join(str(d) for d in shape)


def _pair_fields(fields: dict, name: str, h: int, w: int, default: int | None) -> None:
    """Caffe spells square values as `name` and rectangular ones as `name_h`/`name_w`."""
    base = "kernel" if name == "kernel_size" else name
    if h == w:
        if h != default:
            fields[name] = h
    else:
        fields[f"{base}_h"] = h
        fields[f"{base}_w"] = w


@dataclass(frozen=True)
class Op:
    """Base of all layer configurations."""

    caffe_type: ClassVar[str] = ""
    param_message: ClassVar[str | None] = None
    #: ops Caffe can run in place (top == bottom)
    in_place_ok: ClassVar[bool] = False
    #: ops whose top shares its bottom's memory in Caffe (a reshaped view, no copy)
    views_input: ClassVar[bool] = False
    min_bottoms: ClassVar[int] = 1
    max_bottoms: ClassVar[int | None] = 1

    def infer(self, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def is_view(self, bottoms: int) -> bool:
        """Whether Caffe's top shares the (one) bottom's memory: writing one writes the other."""
        return self.views_input

    def param_shapes(self, inputs: list[Shape]) -> list[Shape]:
        """Shapes of the learnable/stored blobs Caffe allocates for this layer, in order."""
        return []

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        """Multiply-accumulates for one image (batch dimension divided out)."""
        return 0

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        """The layer's `<type>_param` fields, non-default values only, Caffe's spelling."""
        return {}


@dataclass(frozen=True)
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

    def infer(self, inputs: list[Shape]) -> Shape:
        (n, c, h, w) = _checked_4d("convolution", inputs[0])
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
        out_h = _truncated(padded[0] - extent[0], self.stride_h) + 1
        out_w = _truncated(padded[1] - extent[1], self.stride_w) + 1
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

    def param_shapes(self, inputs: list[Shape]) -> list[Shape]:
        c = inputs[0][1]
        weights = (self.num_output, c // self.group, self.kernel_h, self.kernel_w)
        return [weights, (self.num_output,)] if self.bias_term else [weights]

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        c = inputs[0][1]
        return _prod(output[1:]) * (c // self.group) * self.kernel_h * self.kernel_w

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"num_output": self.num_output}
        _pair_fields(fields, "kernel_size", self.kernel_h, self.kernel_w, None)
        _pair_fields(fields, "stride", self.stride_h, self.stride_w, 1)
        _pair_fields(fields, "pad", self.pad_h, self.pad_w, 0)
        if self.group != 1:
            fields["group"] = self.group
        if self.dilation != 1:
            fields["dilation"] = self.dilation
        if not self.bias_term:
            fields["bias_term"] = False
        return fields


POOL_METHODS = ("MAX", "AVE")
ROUNDINGS = ("ceil", "floor")


@dataclass(frozen=True)
class Pooling(Op):
    caffe_type: ClassVar[str] = "Pooling"
    param_message: ClassVar[str] = "pooling_param"

    method: str = "MAX"
    kernel_h: int = 0
    kernel_w: int = 0
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    global_pooling: bool = False
    rounding: str = "ceil"

    def infer(self, inputs: list[Shape]) -> Shape:
        (n, c, h, w) = _checked_4d("pooling", inputs[0])
        if self.global_pooling:
            return (n, c, 1, 1)
        if min(self.kernel_h, self.kernel_w) <= 0 or min(self.stride_h, self.stride_w) <= 0:
            raise ShapeError("pooling kernel and stride must be positive")
        if self.pad_h >= self.kernel_h or self.pad_w >= self.kernel_w or min(self.pad_h, self.pad_w) < 0:
            raise ShapeError(
                f"pooling pad ({self.pad_h}, {self.pad_w}) must be >= 0 and smaller than the kernel "
                f"({self.kernel_h}, {self.kernel_w})")
        # Caffe clips a last window in the padding on both axes as soon as either axis is padded.
        padded = bool(self.pad_h or self.pad_w)
        out_h = _pooled(h, self.kernel_h, self.stride_h, self.pad_h, self.rounding, padded)
        out_w = _pooled(w, self.kernel_w, self.stride_w, self.pad_w, self.rounding, padded)
        _check_spatial("pooling", (h, w), (out_h, out_w))
        return (n, c, out_h, out_w)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        if self.global_pooling:
            return _prod(inputs[0][1:])
        return _prod(output[1:]) * self.kernel_h * self.kernel_w

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"pool": self.method}
        if self.global_pooling:
            fields["global_pooling"] = True
            return fields
        _pair_fields(fields, "kernel_size", self.kernel_h, self.kernel_w, None)
        _pair_fields(fields, "stride", self.stride_h, self.stride_w, 1)
        _pair_fields(fields, "pad", self.pad_h, self.pad_w, 0)
        if self.rounding == "floor":
            if pool_dialect == "round_mode":
                fields["round_mode"] = "FLOOR"
            else:
                fields["ceil_mode"] = False
        return fields


def _pooled(size: int, kernel: int, stride: int, pad: int, rounding: str, padded: bool) -> int:
    """Caffe's pooled size: ceil (or floor) of a float32 division, minus a last window starting
    in the padding. Float32, as Caffe computes it: beyond 2**24 it rounds (off by one at times)."""
    quotient = _float32(_float32(size + 2 * pad - kernel) / _float32(stride))
    out = (math.ceil(quotient) if rounding == "ceil" else math.floor(quotient)) + 1
    if not padded and (out - 1) * stride >= size:
        # Unpadded, Caffe keeps a last window that starts past the input: it pools nothing
        # (MAX gives -FLT_MAX) and its backward pass corrupts memory.
        raise ShapeError(f"the last pooling window would start past the input ({size} wide, "
                         f"stride {stride}, kernel {kernel}): use floor rounding, a kernel at "
                         f"least as large as the stride, or another input size")
    if padded and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True)
class BatchNorm(Op):
    caffe_type: ClassVar[str] = "BatchNorm"
    param_message: ClassVar[str] = "batch_norm_param"
    in_place_ok: ClassVar[bool] = True

    use_global_stats: bool = True
    eps: float = 1e-5

    def param_shapes(self, inputs: list[Shape]) -> list[Shape]:
        c = _channels(inputs[0])
        return [(c,), (c,), (1,)]

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return _prod(output[1:])

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"use_global_stats": self.use_global_stats}
        if not math.isclose(self.eps, 1e-5, rel_tol=1e-9):
            fields["eps"] = self.eps
        return fields


@dataclass(frozen=True)
class Scale(Op):
    caffe_type: ClassVar[str] = "Scale"
    param_message: ClassVar[str] = "scale_param"
    in_place_ok: ClassVar[bool] = True

    bias_term: bool = False

    def param_shapes(self, inputs: list[Shape]) -> list[Shape]:
        c = _channels(inputs[0])
        return [(c,), (c,)] if self.bias_term else [(c,)]

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return _prod(output[1:])

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"bias_term": True} if self.bias_term else {}


@dataclass(frozen=True)
class ReLU(Op):
    caffe_type: ClassVar[str] = "ReLU"
    param_message: ClassVar[str] = "relu_param"
    in_place_ok: ClassVar[bool] = True

    negative_slope: float = 0.0

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"negative_slope": self.negative_slope} if self.negative_slope else {}


@dataclass(frozen=True)
class Dropout(Op):
    caffe_type: ClassVar[str] = "Dropout"
    param_message: ClassVar[str] = "dropout_param"
    in_place_ok: ClassVar[bool] = True

    ratio: float = 0.5

    def infer(self, inputs: list[Shape]) -> Shape:
        if not 0 <= self.ratio < 1:
            raise ShapeError(f"dropout ratio must be in [0, 1), got {self.ratio}")
        return inputs[0]

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"dropout_ratio": self.ratio} if self.ratio != 0.5 else {}


@dataclass(frozen=True)
class InnerProduct(Op):
    caffe_type: ClassVar[str] = "InnerProduct"
    param_message: ClassVar[str] = "inner_product_param"

    num_output: int
    bias_term: bool = True

    def infer(self, inputs: list[Shape]) -> Shape:
        if self.num_output <= 0:
            raise ShapeError(f"inner product num_output must be positive, got {self.num_output}")
        if len(inputs[0]) < 2:
            raise ShapeError("inner product needs an input with a batch axis and at least one more")
        return (inputs[0][0], self.num_output)

    def param_shapes(self, inputs: list[Shape]) -> list[Shape]:
        weights = (self.num_output, _prod(inputs[0][1:]))
        return [weights, (self.num_output,)] if self.bias_term else [weights]

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return self.num_output * _prod(inputs[0][1:])

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"num_output": self.num_output}
        if not self.bias_term:
            fields["bias_term"] = False
        return fields


@dataclass(frozen=True)
class Softmax(Op):
    caffe_type: ClassVar[str] = "Softmax"
    param_message: ClassVar[str] = "softmax_param"
    in_place_ok: ClassVar[bool] = True

    axis: int = 1

    def infer(self, inputs: list[Shape]) -> Shape:
        _axis_index(self.axis, inputs[0], "softmax")
        return inputs[0]

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"axis": self.axis} if self.axis != 1 else {}


@dataclass(frozen=True)
class Concat(Op):
    caffe_type: ClassVar[str] = "Concat"
    param_message: ClassVar[str] = "concat_param"
    max_bottoms: ClassVar[int | None] = None

    axis: int = 1

    def is_view(self, bottoms: int) -> bool:
        return bottoms == 1  # Caffe shares a lone input's memory instead of copying it

    def infer(self, inputs: list[Shape]) -> Shape:
        first = inputs[0]
        axis = _axis_index(self.axis, first, "concat")
        for index, shape in enumerate(inputs[1:], start=2):
            same_rank = len(shape) == len(first)
            if not same_rank or any(a != b for i, (a, b) in enumerate(zip(first, shape)) if i != axis):
                raise ShapeError(
                    f"concat inputs must agree on every axis but {self.axis}: input 1 is "
                    f"{format_shape(first)}, input {index} is {format_shape(shape)}")
        out = list(first)
        out[axis] = sum(shape[axis] for shape in inputs)
        return tuple(out)

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"axis": self.axis} if self.axis != 1 else {}


ELTWISE_OPERATIONS = ("PROD", "SUM", "MAX")


@dataclass(frozen=True)
class Eltwise(Op):
    caffe_type: ClassVar[str] = "Eltwise"
    param_message: ClassVar[str] = "eltwise_param"
    min_bottoms: ClassVar[int] = 2
    max_bottoms: ClassVar[int | None] = None

    operation: str = "SUM"
    coeff: tuple[float, ...] = field(default=())

    def infer(self, inputs: list[Shape]) -> Shape:
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
        return _prod(output[1:]) * (len(inputs) - 1)

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"operation": self.operation}
        if self.coeff:
            fields["coeff"] = list(self.coeff)
        return fields


@dataclass(frozen=True)
class Reshape(Op):
    caffe_type: ClassVar[str] = "Reshape"
    param_message: ClassVar[str] = "reshape_param"
    views_input: ClassVar[bool] = True

    dims: tuple[int, ...] = ()

    def infer(self, inputs: list[Shape]) -> Shape:
        source = inputs[0]
        out = []
        for i, dim in enumerate(self.dims):
            if dim == 0:
                if i >= len(source):
                    raise ShapeError(f"reshape dim {i} is 0 (copy) but the input has only {len(source)} axes")
                out.append(source[i])
            elif dim == -1 or dim > 0:
                out.append(dim)
            else:
                raise ShapeError(f"reshape dims must be positive, 0 (copy) or -1 (infer), got {dim}")
        if out.count(-1) > 1:
            raise ShapeError("reshape may infer (-1) at most one dimension")
        total = _prod(source)
        known = _prod(d for d in out if d != -1)
        if -1 in out:
            if known == 0 or total % known:
                raise ShapeError(f"reshape cannot infer a dimension: {total} elements do not divide by {known}")
            out[out.index(-1)] = total // known
        elif known != total:
            raise ShapeError(f"reshape to {format_shape(tuple(out))} changes the element count ({total})")
        return tuple(out)

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"shape": {"dim": list(self.dims)}}


@dataclass(frozen=True)
class Flatten(Op):
    caffe_type: ClassVar[str] = "Flatten"
    param_message: ClassVar[str] = "flatten_param"
    views_input: ClassVar[bool] = True

    axis: int = 1

    def infer(self, inputs: list[Shape]) -> Shape:
        source = inputs[0]
        axis = _axis_index(self.axis, source, "flatten")
        return source[:axis] + (_prod(source[axis:]),)

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"axis": self.axis} if self.axis != 1 else {}


OPS: dict[str, type[Op]] = {
    cls.caffe_type: cls
    for cls in (Convolution, Pooling, BatchNorm, Scale, ReLU, Dropout, InnerProduct, Softmax,
                Concat, Eltwise, Reshape, Flatten)
}


def _checked_4d(op: str, shape: Shape) -> Shape:
    if len(shape) != 4:
        raise ShapeError(f"{op} needs a 4-D N x C x H x W input, got {format_shape(shape)}")
    return shape


def _channels(shape: Shape) -> int:
    if len(shape) < 2:
        raise ShapeError(f"needs an input with a channel axis, got {format_shape(shape)}")
    return shape[1]


def _axis_index(axis: int, shape: Shape, op: str) -> int:
    index = axis + len(shape) if axis < 0 else axis
    if not 0 <= index < len(shape):
        raise ShapeError(f"{op} axis {axis} is out of range for a {len(shape)}-D input")
    return index


def _truncated(numerator: int, denominator: int) -> int:
    """Integer division rounding toward zero, as C's `/` does."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def _float32(value: float) -> float:
    """`value` rounded to the nearest float32 (a float64 quotient of float32 operands rounded this
    way is exactly the float32 quotient)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _check_spatial(op: str, before: tuple[int, int], after: tuple[int, int]) -> None:
    if min(after) <= 0:
        raise ShapeError(
            f"{op} output would be {after[0]} x {after[1]} from a {before[0]} x {before[1]} input: "
            f"use a larger input size, a smaller kernel or stride, or more padding")
