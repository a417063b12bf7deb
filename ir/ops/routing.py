"""Layers that route blobs rather than compute: Split (`split_layer.cpp`) hands one bottom to
several tops, Silence (`silence_layer.cpp`) consumes bottoms, Parameter (`parameter_layer.hpp`)
makes a learned blob a top, Filter (`filter_layer.cpp`) keeps the items a selector picks, and
BatchReindex (`batch_reindex_layer.cpp`) gathers items by index."""
from __future__ import annotations

from typing import Any

from archc.ir.ops.base import (ArgumentError, Op, Param, ParamBlob, Primitive, Shape, ShapeError,
                               definition, format_shape, required)


def _split(arguments: dict[str, Any]) -> list[Op]:
    if arguments["copies"] < 1:
        raise ArgumentError(f"copies must be at least 1, got {arguments['copies']}")
    return [Split()]


@definition
class Split(Op):
    """The bottom as each of its tops (Caffe inserts these itself where a blob has several
    readers): every top shares the bottom's data."""

    caffe_type = "Split"

    primitives = (
        Primitive("split", (Param("copies", "int", 2, doc="how many tensors it writes"),), _split,
                  "Split: the tensor as `copies` tensors that share its data",
                  tops=lambda a: a["copies"]),
    )

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

    primitives = (
        Primitive("silence", (), lambda a: [Silence()],
                  "Silence: reads the cursor's tensors and writes nothing; the cursor stays"),
    )

    def max_tops(self) -> int | None:
        return 0

    def top_count(self, bottoms: int) -> int:
        return 0


@definition
class Parameter(Op):
    """A learned blob of the given shape, as the layer's top."""

    caffe_type = "Parameter"
    param_message = "parameter_param"
    min_bottoms = 0
    max_bottoms = 0

    shape: tuple[int, ...] = ()

    primitives = (
        Primitive("parameter", (required("shape", "ints", "the blob's shape"),),
                  lambda a: [Parameter(tuple(a["shape"]))],
                  "Parameter: a learned blob of that shape, read from no tensor"),
    )

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

    primitives = (
        Primitive("filter", (), lambda a: [Filter()],
                  "Filter: of [data, ..., selector], the items of each data tensor whose "
                  "selector is not 0", reads="[data, selector]"),
    )

    def max_tops(self) -> int | None:
        return None

    def top_count(self, bottoms: int) -> int:
        return bottoms - 1

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

    primitives = (
        Primitive("batch_reindex", (), lambda a: [BatchReindex()],
                  "BatchReindex: of [data, indices], the data's items the indices list",
                  reads="[data, indices]"),
    )

    def output_shape(self, inputs: list[Shape]) -> Shape:
        data, indices = inputs
        if len(indices) != 1:
            raise ShapeError(f"batch reindex's second input lists indices: it must be 1-D, got "
                             f"{format_shape(indices)}")
        return indices + data[1:]
