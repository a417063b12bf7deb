"""Layers that route blobs rather than compute: Split (`split_layer.cpp`) hands one bottom to
several tops, Silence (`silence_layer.cpp`) consumes bottoms, Parameter (`parameter_layer.hpp`)
makes a learned blob a top, Filter (`filter_layer.cpp`) keeps the items a selector picks, and
BatchReindex (`batch_reindex_layer.cpp`) gathers items by index."""
from __future__ import annotations

from typing import Any

from archc.ir.ops.base import (Op, ParamBlob, Shape, ShapeError, definition, format_shape)


@definition
class Split(Op):
    """The bottom as each of its tops (Caffe inserts these itself where a blob has several
    readers): every top shares the bottom's data."""

    caffe_type = "Split"

    def max_tops(self) -> int | None:
        return None

    def is_view(self, bottoms: int, tops: int) -> bool:
        return True


@definition
class Silence(Op):
    """Reads its bottoms and writes nothing (so that Caffe reports no unused output)."""

    caffe_type = "Silence"
    max_bottoms = None
    min_tops = 0

    def max_tops(self) -> int | None:
        return 0


@definition
class Parameter(Op):
    """A learned blob of the given shape, as the layer's top."""

    caffe_type = "Parameter"
    param_message = "parameter_param"
    min_bottoms = 0
    max_bottoms = 0

    shape: tuple[int, ...] = ()

    def output_shape(self, inputs: list[Shape]) -> Shape:
        if min(self.shape, default=1) < 1:
            raise ShapeError(f"parameter shape ({', '.join(map(str, self.shape))}) needs every "
                             f"dimension at least 1")
        return self.shape

    def param_blobs(self, inputs: list[Shape]) -> tuple[ParamBlob, ...]:
        return (ParamBlob(self.shape, "zeros"),)  # Caffe allocates it zeroed, without a filler

    def caffe_fields(self, pool_dialect: str = "ceil_mode") -> dict:
        return {"shape": {"dim": list(self.shape)}} if self.shape else {}

    @classmethod
    def from_caffe(cls, layer: Any, dialect: str) -> Parameter:
        return cls(shape=tuple(layer.parameter_param.shape.dim))


@definition
class Filter(Op):
    """Keeps the items (indices of axis 0) of each bottom but the last whose value in the last,
    the selector, is not 0. Shapes are those Caffe allocates at set-up, every item; running, the
    tops hold the selected items only."""

    caffe_type = "Filter"
    min_bottoms = 2
    max_bottoms = None
    backward = False  # Caffe cannot backpropagate to the selector

    def max_tops(self) -> int | None:
        return None

    def infer(self, inputs: list[Shape], tops: int) -> tuple[Shape, ...]:
        *data, selector = inputs
        if tops != len(data):
            raise ShapeError(f"filter writes one top per input but the last (the selector): "
                             f"{len(data)}, not {tops}")
        if not selector or any(size != 1 for size in selector[1:]):
            raise ShapeError(f"filter's selector (its last input) must be N x 1 x ..., got "
                             f"{format_shape(selector)}")
        for index, shape in enumerate(data, start=1):
            if shape[:1] != selector[:1]:
                raise ShapeError(f"filter input {index} ({format_shape(shape)}) must have the "
                                 f"selector's {selector[0]} items along axis 0")
        return tuple(data)


@definition
class BatchReindex(Op):
    """The items (indices of axis 0) of the first bottom that the second, 1-D, lists by index."""

    caffe_type = "BatchReindex"
    min_bottoms = 2
    max_bottoms = 2
    backward = False  # Caffe cannot backpropagate to the indices
    index_bottoms = (1,)

    def output_shape(self, inputs: list[Shape]) -> Shape:
        data, indices = inputs
        if len(indices) != 1:
            raise ShapeError(f"batch reindex's second input lists indices: it must be 1-D, got "
                             f"{format_shape(indices)}")
        return indices + data[1:]
