"""BatchNorm (`batch_norm_layer.cpp`) and the per-channel Scale (`scale_layer.cpp`) that follows it."""
from __future__ import annotations

import math
from typing import Any, ClassVar

from archc.ir.ops.base import (Op, Param, ParamBlob, Primitive, Shape, caffe, channels, definition,
                               prod, require, short_float)


@definition
class BatchNorm(Op):
    caffe_type: ClassVar[str] = "BatchNorm"
    param_message: ClassVar[str] = "batch_norm_param"
    in_place_ok: ClassVar[bool] = True

    use_global_stats: bool = True
    eps: float = 1e-5

    primitives: ClassVar = (
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


@definition
class Scale(Op):
    caffe_type: ClassVar[str] = "Scale"
    param_message: ClassVar[str] = "scale_param"
    in_place_ok: ClassVar[bool] = True

    bias_term: bool = caffe(False)

    primitives: ClassVar = (
        Primitive("scale", (Param("bias", "bool", True),),
                  lambda a: [Scale(bias_term=a["bias"])], "Scale alone", in_place=True),
    )

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        c = channels(inputs[0])
        scale = ParamBlob((c,), "ones")
        return (scale, ParamBlob((c,), "zeros")) if self.bias_term else (scale,)

    def macs(self, inputs: list[Shape], output: Shape) -> int:
        return prod(output[1:])

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Scale:
        p = layer.scale_param
        require(len(layer.bottom) == 1, "a scale read from a second bottom is not supported")
        require(p.axis == 1 and p.num_axes == 1,
                "only per-channel scale (axis 1, num_axes 1) is supported")
        return super().from_caffe(layer, dialect)
