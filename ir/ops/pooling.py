"""Pooling (`pooling_layer.cpp`): MAX, AVE and STOCHASTIC, ceil or floor rounding, global; MAX's
`mask` top. SPP (`spp_layer.cpp`), a pyramid of poolings over the whole plane."""
from __future__ import annotations

import math
from typing import Any

from archc.ir.ops.base import (ArgumentError, Op, Param, Primitive, Shape, ShapeError, caffe,
                               check_spatial, checked_4d, definition, float32, pair, prod,
                               read_pair, require, required, write_pair)

POOL_METHODS = ("MAX", "AVE", "STOCHASTIC")
ROUNDINGS = ("ceil", "floor")


def _primitive(name: str, method: str) -> Primitive:
    def build(a: dict[str, Any]) -> list[Op]:
        if a["global"]:
            if a["kernel"] is not None or pair(a["stride"]) != (1, 1) or pair(a["pad"]) != (0, 0):
                raise ArgumentError("global = true pools the whole plane: drop kernel, stride "
                                    "and pad")
            return [Pooling(method, global_pooling=True)]
        if a["kernel"] is None:
            raise ArgumentError("missing argument 'kernel' (or pass global = true)")
        return [Pooling(method, *pair(a["kernel"]), *pair(a["stride"]), *pair(a["pad"]),
                        rounding=a["round"])]
    params = (
        Param("kernel", "pair", doc="window side, or [h, w]"),
        Param("stride", "pair", 1),
        Param("pad", "pair", 0),
        Param("round", "choice", "ceil", choices=ROUNDINGS, doc="output size rounding"),
        Param("global", "bool", False, doc="pool the whole plane"),
    )
    return Primitive(name, params, build, f"{method} Pooling" + (
        " (GPU only: in the TEST phase, a deploy net's, the average weighted by each value)"
        if method == "STOCHASTIC" else ""))


@definition
class Pooling(Op):
    caffe_type = "Pooling"
    param_message = "pooling_param"

    method: str = "MAX"
    kernel_h: int = 0
    kernel_w: int = 0
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    global_pooling: bool = False
    rounding: str = "ceil"

    primitives = (_primitive("maxpool", "MAX"), _primitive("avepool", "AVE"),
                            _primitive("stochasticpool", "STOCHASTIC"))

    def max_tops(self) -> int:
        return 2 if self.method == "MAX" else 1  # MAX may also write the argmax mask

    def top_count(self, bottoms: int) -> int | None:
        return None if self.method == "MAX" else 1  # named tops decide: the output, and the mask

    def cpu_forward(self) -> bool:
        return self.method != "STOCHASTIC"  # Caffe implements stochastic pooling on GPUs only

    def output_shape(self, inputs: list[Shape]) -> Shape:
        (n, c, h, w) = checked_4d("pooling", inputs[0])
        if self.global_pooling:
            if (self.kernel_h, self.kernel_w, self.stride_h, self.stride_w, self.pad_h, self.pad_w) \
                    != (0, 0, 1, 1, 0, 0):
                raise ShapeError("global pooling pools the whole plane: it takes no kernel, "
                                 "stride or pad")
            return (n, c, 1, 1)
        if min(self.kernel_h, self.kernel_w) <= 0 or min(self.stride_h, self.stride_w) <= 0:
            raise ShapeError("pooling kernel and stride must be positive")
        if (self.pad_h or self.pad_w) and self.method == "STOCHASTIC":
            raise ShapeError("stochastic pooling takes no padding (Caffe pads MAX and AVE only)")
        if self.pad_h >= self.kernel_h or self.pad_w >= self.kernel_w or min(self.pad_h, self.pad_w) < 0:
            raise ShapeError(
                f"pooling pad ({self.pad_h}, {self.pad_w}) must be >= 0 and smaller than the kernel "
                f"({self.kernel_h}, {self.kernel_w})")
        # Caffe clips a last window in the padding on both axes as soon as either axis is padded.
        padded = bool(self.pad_h or self.pad_w)
        out_h = _pooled(h, self.kernel_h, self.stride_h, self.pad_h, self.rounding, padded)
        out_w = _pooled(w, self.kernel_w, self.stride_w, self.pad_w, self.rounding, padded)
        check_spatial("pooling", (h, w), (out_h, out_w))
        return (n, c, out_h, out_w)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        if self.global_pooling:
            return prod(inputs[0][1:])
        return prod(output[1:]) * self.kernel_h * self.kernel_w

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        fields: dict = {"pool": self.method}
        if self.global_pooling:
            fields["global_pooling"] = True
            return fields
        write_pair(fields, "kernel_size", self.kernel_h, self.kernel_w, None)
        write_pair(fields, "stride", self.stride_h, self.stride_w, 1)
        write_pair(fields, "pad", self.pad_h, self.pad_w, 0)
        if self.rounding == "floor":
            if pool_dialect == "round_mode":
                fields["round_mode"] = "FLOOR"
            else:
                fields["ceil_mode"] = False
        return fields

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Pooling:
        p = layer.pooling_param
        method = p.DESCRIPTOR.fields_by_name["pool"].enum_type.values_by_number[p.pool].name
        if dialect == "round_mode":
            rounding = "floor" if p.round_mode == p.FLOOR else "ceil"
        else:
            rounding = "ceil" if p.ceil_mode else "floor"
        for base in ("kernel", "stride", "pad"):  # Caffe's pooling, unlike its convolution, needs both
            require(p.HasField(f"{base}_h") == p.HasField(f"{base}_w"),
                    f"give both {base}_h and {base}_w, or neither")
        stride, pad = read_pair(p, "stride", 1), read_pair(p, "pad", 0)
        if p.global_pooling:
            require(read_pair(p, "kernel_size", None) is None, "global pooling takes no kernel size")
            require(stride == (1, 1) and pad == (0, 0), "global pooling takes no stride or pad")
            kernel = (0, 0)
        else:
            kernel = read_pair(p, "kernel_size", None)
            require(kernel is not None,
                    "kernel_size (or kernel_h and kernel_w, or global_pooling) is required")
        return cls(method=method, kernel_h=kernel[0], kernel_w=kernel[1], stride_h=stride[0],
                   stride_w=stride[1], pad_h=pad[0], pad_w=pad[1],
                   global_pooling=p.global_pooling, rounding=rounding)


def _pooled(size: int, kernel: int, stride: int, pad: int, rounding: str, padded: bool) -> int:
    """Caffe's pooled size: ceil (or floor) of a float32 division, minus a last window starting
    in the padding. Float32, as Caffe computes it: beyond 2**24 it rounds (off by one at times)."""
    quotient = float32(float32(size + 2 * pad - kernel) / float32(stride))
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


@definition
class SPP(Op):
    """Spatial pyramid pooling: level i pools the plane into 2**i x 2**i bins; the levels'
    outputs, flattened, are concatenated (one level is the pooling's own N x C x 1 x 1)."""

    caffe_type = "SPP"
    param_message = "spp_param"

    pyramid_height: int = caffe()
    pool: str = caffe("MAX")

    primitives = (
        Primitive("spp", (required("levels", "int", "pyramid height"),
                          Param("pool", "choice", "max", choices=("max", "ave", "stochastic"))),
                  lambda a: [SPP(a["levels"], a["pool"].upper())], "SPP, spatial pyramid pooling"),
    )

    def cpu_forward(self) -> bool:
        return self.pool != "STOCHASTIC"

    def levels(self, shape: Shape) -> list[tuple[Pooling, Shape]]:
        """Each level's pooling (as Caffe's SPPLayer::GetPoolingParam makes it) and its output."""
        (n, c, h, w) = checked_4d("spp", shape)
        if self.pyramid_height <= 0:
            raise ShapeError(f"spp pyramid_height must be at least 1, got {self.pyramid_height}")
        made = []
        for level in range(self.pyramid_height):
            bins = 2 ** level
            # the smallest kernel that covers the plane in `bins` steps, padded evenly to fit
            kernel_h, kernel_w = -(-h // bins), -(-w // bins)
            pad_h, pad_w = (kernel_h * bins - h + 1) // 2, (kernel_w * bins - w + 1) // 2
            pooling = Pooling(self.pool, kernel_h, kernel_w, kernel_h, kernel_w, pad_h, pad_w)
            try:
                made.append((pooling, pooling.output_shape([shape])))
            except ShapeError as error:
                raise ShapeError(f"spp level {level} ({bins} x {bins} bins) of a {h} x {w} plane: "
                                 f"{error}; use fewer levels or a larger input") from None
        return made

    def output_shape(self, inputs: list[Shape]) -> Shape:
        levels = self.levels(inputs[0])
        if len(levels) == 1:
            return levels[0][1]
        return (inputs[0][0], sum(prod(output[1:]) for _, output in levels))

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return sum(pooling.macs(inputs, level_output) for pooling, level_output in self.levels(inputs[0]))
