"""The IR: a DAG of typed layers over named blobs, with every blob's shape inferred.

This is the one contract between the stages: the DSL elaborates into a `Net`, the prototxt importer
reads into one, codegen renders one, and summary/diff/runtime read one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ir.diagnostics import ArchError, Span
from ir.ops import Op, Shape, ShapeError, format_shape


@dataclass(frozen=True)
class Layer:
    name: str
    op: Op
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    span: Span | None = None

    @property
    def type(self) -> str:
        return self.op.caffe_type

    @property
    def in_place(self) -> bool:
        return self.bottoms[:1] == self.tops[:1]


@dataclass
class Net:
    """Inputs (blob name -> N x C x H x W) and layers in execution order."""

    inputs: dict[str, Shape]
    layers: list[Layer] = field(default_factory=list)
    name: str | None = None
    input_span: Span | None = None


@dataclass(frozen=True)
class LayerShapes:
    layer: Layer
    inputs: tuple[Shape, ...]
    output: Shape

    @property
    def param_shapes(self) -> list[Shape]:
        return self.layer.op.param_shapes(list(self.inputs))

    @property
    def params(self) -> int:
        total = 0
        for shape in self.param_shapes:
            count = 1
            for dim in shape:
                count *= dim
            total += count
        return total

    @property
    def macs(self) -> int:
        return self.layer.op.macs(list(self.inputs), self.output)


@dataclass
class ShapedNet:
    net: Net
    blobs: dict[str, Shape]
    layers: list[LayerShapes]


def infer_shapes(net: Net) -> ShapedNet:
    """Walk the layers in order, checking wiring and computing each top's shape with Caffe's rules.

    Raises `ArchError` at the offending layer's span: undefined bottoms, duplicate layer names,
    in-place use of ops Caffe cannot run in place, and every `ShapeError` of the ops.
    """
    blobs: dict[str, Shape] = dict(net.inputs)
    seen: dict[str, Layer] = {}
    shaped: list[LayerShapes] = []
    for layer in net.layers:
        if layer.name in seen:
            first = seen[layer.name].span
            where = f" (first defined at {first})" if first else ""
            raise ArchError(f"duplicate layer name '{layer.name}'{where}: layer names must be unique, "
                            f"since Caffe loads weights by name", layer.span)
        seen[layer.name] = layer
        op = layer.op
        count = len(layer.bottoms)
        if count < op.min_bottoms or (op.max_bottoms is not None and count > op.max_bottoms):
            raise ArchError(f"{layer.type} layer '{layer.name}' takes "
                            f"{_arity(op)} inputs, got {count}", layer.span)
        for bottom in layer.bottoms:
            if bottom not in blobs:
                raise ArchError(f"layer '{layer.name}' reads blob '{bottom}', which no earlier layer "
                                f"produces", layer.span)
        if layer.in_place and not op.in_place_ok:
            raise ArchError(f"{layer.type} layer '{layer.name}' cannot run in place: give it a top "
                            f"blob of its own", layer.span)
        inputs = tuple(blobs[b] for b in layer.bottoms)
        try:
            output = op.infer(list(inputs))
        except ShapeError as error:
            shapes = ", ".join(format_shape(s) for s in inputs)
            raise ArchError(f"{layer.type} layer '{layer.name}': {error}",
                            layer.span, notes=(f"input shapes: {shapes}",)) from None
        for top in layer.tops:
            blobs[top] = output
        shaped.append(LayerShapes(layer, inputs, output))
    return ShapedNet(net, blobs, shaped)


def _arity(op: Op) -> str:
    if op.max_bottoms is None:
        return f"at least {op.min_bottoms}"
    if op.max_bottoms == op.min_bottoms:
        return str(op.min_bottoms)
    return f"{op.min_bottoms} to {op.max_bottoms}"
