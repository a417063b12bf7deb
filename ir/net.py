"""The IR: a DAG of typed layers over named blobs, with every blob's shape inferred.

This is the one contract between the stages: the DSL elaborates into a `Net`, the prototxt importer
reads into one, codegen renders one, and summary/diff/runtime read one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from archc.errors import ArchError, Span
from archc.ir.ops import INT_MAX, MAX_AXES, Op, Shape, ShapeError, format_shape

# Caffe counts a blob's elements in a C int (Blob::Reshape checks it).
MAX_BLOB = INT_MAX


BLOCK_CALL = "block"
LOOP_ITERATION = "loop"


@dataclass(frozen=True, eq=False)
class CallFrame:
    """One step of the source structure that emitted a layer: a block call, or one iteration of a
    loop. Summary groups and graph clusters are the distinct call paths (chains of these)."""

    kind: str                              # BLOCK_CALL or LOOP_ITERATION
    name: str                              # the block's name; a loop's variables ("stage, count")
    span: Span                             # the call statement; the `for` statement
    arguments: tuple[tuple[str, Any], ...]  # the arguments given / the loop variables' values
    written: Callable[[Any], str]          # a value of `arguments` as the source writes it
    iteration: int = 0                     # which iteration of the loop (0 for a block call)

    @cached_property
    def values(self) -> tuple[tuple[str, str], ...]:
        """The arguments as written: made when asked for, since a compile only records them."""
        return tuple((name, self.written(value)) for name, value in self.arguments)

    @property
    def text(self) -> str:
        """`bottleneck(n=1, stride=2)`, or `for stage=0, count=3`."""
        values = ", ".join(f"{name}={value}" for name, value in self.values)
        return f"{self.name}({values})" if self.kind == BLOCK_CALL else f"for {values}"

    # Frames compare by what they record, as written: `arguments` may hold lists, which do not hash.
    def _key(self) -> tuple:
        return self.kind, self.name, self.span, self.values, self.iteration

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallFrame) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True)
class Layer:
    name: str
    op: Op
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    span: Span | None = None
    # The block calls and loop iterations that emitted the layer, outermost first; empty for a
    # layer written at the top of a net, and for every layer of an imported prototxt.
    call_path: tuple[CallFrame, ...] = ()
    #: how many `param { }` specs its prototxt gives (Caffe refuses more than it has parameter blobs)
    param_specs: int = 0

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
    outputs: tuple[Shape, ...]  # one per top

    @property
    def output(self) -> Shape:
        """The first top's shape (a layer's only one, but for Slice, Split and MAX's mask); ()
        for a layer without tops (Silence)."""
        return self.outputs[0] if self.outputs else ()

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


class ShapeTracker:
    """Adds layers one at a time, checking wiring and computing each top's shape with Caffe's rules.

    The DSL uses it while elaborating (so specs can ask a blob's shape), and `infer_shapes` uses it
    over a whole net. Errors are `ArchError`s at the offending layer's span.
    """

    def __init__(self, inputs: dict[str, Shape]):
        self.blobs: dict[str, Shape] = dict(inputs)
        self.layers: list[LayerShapes] = []
        self._by_name: dict[str, Layer] = {}
        self._first_reader: dict[str, str] = {}  # blob -> first layer to read its current values
        self._memory: dict[str, str] = {}  # blob -> the blob whose memory it views (Reshape...)
        self._rewrites: dict[str, list[Layer]] = {}  # memory -> in-place layers that rewrote it

    def has_layer(self, name: str) -> bool:
        return name in self._by_name

    def rewrites(self, blob: str) -> list[Layer]:
        """The in-place layers that have rewritten `blob`'s memory so far, in order (through any
        blob sharing that memory): a value taken after n of them is current while there are n."""
        return self._rewrites.get(self._memory.get(blob, blob), [])

    def add(self, layer: Layer) -> LayerShapes:
        if layer.name in self._by_name:
            first = self._by_name[layer.name].span
            where = f" (first defined at {first})" if first else ""
            raise ArchError(f"duplicate layer name '{layer.name}'{where}: layer names must be unique, "
                            f"since Caffe loads weights by name", layer.span)
        op = layer.op
        tops, most = len(layer.tops), op.max_tops()
        if tops < op.min_tops or (most is not None and tops > most):
            raise ArchError(f"{layer.type} layer '{layer.name}' has {tops} top blobs: it writes "
                            f"{_count_range(op.min_tops, most)}", layer.span)
        if len(set(layer.tops)) != tops:
            raise ArchError(f"{layer.type} layer '{layer.name}' names a top blob twice", layer.span)
        count = len(layer.bottoms)
        if count < op.min_bottoms or (op.max_bottoms is not None and count > op.max_bottoms):
            raise ArchError(f"{layer.type} layer '{layer.name}' takes "
                            f"{_count_range(op.min_bottoms, op.max_bottoms)} inputs, got {count}",
                            layer.span)
        for bottom in layer.bottoms:
            if bottom not in self.blobs:
                raise ArchError(f"layer '{layer.name}' reads blob '{bottom}', which no earlier layer "
                                f"produces", layer.span)
        if layer.in_place and not op.in_place_ok:
            raise ArchError(f"{layer.type} layer '{layer.name}' cannot run in place: give it a top "
                            f"blob of its own", layer.span)
        if layer.in_place and layer.tops[0] in self._first_reader:
            # Caffe splits a blob read twice and renames the readers' bottoms, which would leave
            # this layer a second producer of the blob: it aborts.
            raise ArchError(f"{layer.type} layer '{layer.name}' rewrites blob '{layer.tops[0]}' in "
                            f"place after layer '{self._first_reader[layer.tops[0]]}' read it, "
                            f"which Caffe refuses: give it a top blob of its own", layer.span)
        for index, top in enumerate(layer.tops):
            # Caffe aborts on a top that an earlier layer produced, unless it is this layer's
            # bottom at the same index (in-place computation).
            if top in self.blobs and layer.bottoms[index:index + 1] != (top,):
                raise ArchError(f"{layer.type} layer '{layer.name}' writes blob '{top}', which an "
                                f"input or earlier layer already produces: Caffe rewrites a blob only "
                                f"in place; give the layer a top of its own", layer.span)
        inputs = tuple([self.blobs[b] for b in layer.bottoms])  # of a list: a generator costs more
        try:
            outputs = op.infer(list(inputs), tops)
            param_shapes = op.param_shapes(list(inputs))
            for shape in (*outputs, *param_shapes):
                if math.prod(shape) > MAX_BLOB:
                    raise ShapeError(f"a blob of {format_shape(shape)} holds more than the "
                                     f"{MAX_BLOB} values Caffe allows: use a smaller input size "
                                     f"or fewer channels")
                if len(shape) > MAX_AXES:
                    raise ShapeError(f"a blob of {len(shape)} axes: Caffe allows at most {MAX_AXES}")
        except ShapeError as error:
            shapes = ", ".join(format_shape(s) for s in inputs)
            raise ArchError(f"{layer.type} layer '{layer.name}': {error}",
                            layer.span, notes=(f"input shapes: {shapes}",)) from None
        if layer.param_specs > len(param_shapes):
            raise ArchError(f"layer '{layer.name}' gives {layer.param_specs} param specs for its "
                            f"{len(param_shapes)} parameter blob(s), which Caffe refuses", layer.span)
        self._by_name[layer.name] = layer
        for bottom in layer.bottoms:
            self._first_reader.setdefault(bottom, layer.name)
        for top, shape in zip(layer.tops, outputs):
            self.blobs[top] = shape
            self._first_reader.pop(top, None)
        if layer.in_place:
            memory = self._memory.get(layer.tops[0], layer.tops[0])
            self._rewrites.setdefault(memory, []).append(layer)
        elif op.is_view(len(layer.bottoms), tops):
            for top in layer.tops:
                self._memory[top] = self._memory.get(layer.bottoms[0], layer.bottoms[0])
        shaped = LayerShapes(layer, inputs, outputs)
        self.layers.append(shaped)
        return shaped


def infer_shapes(net: Net) -> ShapedNet:
    """Check a whole net and compute every blob's shape (see `ShapeTracker`)."""
    tracker = ShapeTracker(net.inputs)
    for layer in net.layers:
        tracker.add(layer)
    return ShapedNet(net, tracker.blobs, tracker.layers)


def _count_range(least: int, most: int | None) -> str:
    if most is None:
        return f"at least {least}"
    if most == least:
        return str(least)
    return f"{least} to {most}"
