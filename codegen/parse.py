"""Prototxt -> IR: read a Caffe deploy prototxt (either pooling dialect) into an `ir.Net`.

The importer normalises Caffe's alternative spellings (`kernel_size` vs `kernel_h`/`kernel_w`,
`input` + `input_shape`/`input_dim` vs an `Input` layer, `ceil_mode` vs `round_mode`) and applies
Caffe's defaults, so a hand-written file and a generated one become the same IR. Files in Caffe's
older V0 and V1 layer formats are upgraded first, as Caffe upgrades them (`codegen.upgrade`).
Every layer carries the `Span` of its `layer {` (or old `layers {`) keyword; protobuf's text
parser does not report positions, so `layer_spans` finds them with a small scanner of its own.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.message import Message

from archc.codegen import schema, upgrade
from archc.ir import OPS, ArchError, Layer, Net, Span
from archc.ir.ops import Op, UnsupportedSetting
from archc.ir.ops.base import read_pair, short_float
from archc.ir.ops.fork import ForkTypes

# Matches comments and strings (skipped), braces, and identifiers; a field name at the top level
# is an identifier followed by ':' or '{'.
_TOKEN = re.compile(r"""#[^\n]*|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[{}]|[A-Za-z_]\w*""")
TEST_PHASE = 1  # caffe.Phase.TEST
_ROUND_MODE_FIELD = re.compile(r"^[^#\n]*\bround_mode\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Prototxt:
    """A parsed prototxt: the message, its dialect, and where each top-level field sits."""

    message: Message
    dialect: str
    path: str
    layer_spans: list[Span | None]
    input_span: Span | None
    #: what was upgraded from an old format on reading (`codegen.upgrade`); () for a current file
    upgrades: tuple[str, ...] = ()
    #: the fork types the file was read with (declared in .arch files)
    types: ForkTypes = field(default_factory=dict)


def detect_dialect(text: str) -> str:
    """`round_mode` appears only in BVLC-master files; everything else reads as the ceil_mode dialect."""
    return "round_mode" if _ROUND_MODE_FIELD.search(text) else "ceil_mode"


def read_prototxt(text: str, path: str = "<prototxt>", types: ForkTypes | None = None) -> Prototxt:
    """Parse a prototxt of either dialect and any of Caffe's layer formats, noting where its
    layers are; a V0 or V1 file is upgraded to the current format (spans point into it).
    `types`: the fork layer types it may use, with their parameter messages."""
    types = types or {}
    dialect = detect_dialect(text)
    message = schema.parse_prototxt(text, dialect, path, schema.extensions_for(types))
    positions = top_level_fields(text, path)
    # The upgrade's errors and layer origins index the old file's entries: `layers` in V0 and V1.
    entries = "layers" if len(message.layers) else "layer"
    old_spans = positions.get(entries, [])
    if len(old_spans) != len(getattr(message, entries)):
        # The scanner and protobuf disagree only on exotic syntax; positions are then unknown.
        old_spans = [None] * len(getattr(message, entries))
    try:
        upgraded = upgrade.upgrade_layers(message)
    except upgrade.UpgradeError as error:
        span = None if error.layer is None else old_spans[error.layer]
        raise ArchError(error.message, span) from None
    layer_spans = [old_spans[origin] for origin in upgraded.origins]
    input_spans = positions.get("input", [])
    return Prototxt(upgraded.net, dialect, path, layer_spans,
                    input_spans[0] if input_spans else None, upgraded.steps, types)


def top_level_fields(text: str, path: str) -> dict[str, list[Span]]:
    """The position of every top-level field of the text, by field name, in order."""
    line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
    found: dict[str, list[Span]] = {}
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif depth == 0 and (token[0].isalpha() or token[0] == "_"):
            after = text[match.end():match.end() + 64].lstrip()
            if after[:1] in (":", "{"):
                line = bisect.bisect_right(line_starts, match.start())
                column = match.start() - line_starts[line - 1] + 1
                found.setdefault(token, []).append(
                    Span(path, line, column, line, column + len(token)))
    return found


def import_net(text: str, path: str = "<prototxt>", types: ForkTypes | None = None) -> Net:
    return net_from_prototxt(read_prototxt(text, path, types))


def net_from_prototxt(proto: Prototxt) -> Net:
    message = proto.message
    inputs = declared_inputs(message, proto.input_span)
    input_span = proto.input_span
    layers: list[Layer] = []
    stages = deploy_stages(message)
    weight_names: dict[str, str] = {}  # param name -> the layer that first named it
    read: set[str] = set()  # blobs read so far
    for layer, span in zip(message.layer, proto.layer_spans):
        if layer.include and layer.exclude:
            raise ArchError(f"layer '{layer.name}' has both include and exclude rules, which "
                            f"Caffe refuses: keep one kind", span)
        if not included_in_deploy_net(layer, stages):
            continue
        _check_layer_fields(layer, span, weight_names)
        if layer.type == "Input":
            _require_fresh_inputs(layer, span, inputs, read)
            inputs.update(input_layer_shapes(layer, span))
            input_span = input_span or span
            continue
        op = op_from_layer(layer, proto.dialect, span, proto.types)
        layers.append(Layer(layer.name, op, tuple(layer.bottom), tuple(layer.top), span,
                            param_specs=len(layer.param)))
        read.update(layer.bottom)
    if not inputs:
        raise ArchError("the prototxt declares no input: add `input` + `input_shape` or an Input layer",
                        Span(proto.path, 1, 1))
    return Net(inputs, layers, name=message.name or None, input_span=input_span)


def _check_layer_fields(layer: Message, span: Span | None, weight_names: dict[str, str]) -> None:
    """Fields that make Caffe abort or run a layer in a way archc does not model."""
    if layer.HasField("phase") and layer.phase != TEST_PHASE:
        raise ArchError(f"layer '{layer.name}' sets phase: TRAIN, so Caffe would run it in "
                        f"training mode inside a deploy net: remove the field", span)
    names = [param.name for param in layer.param if param.name]
    if len(set(names)) != len(names):
        raise ArchError(f"layer '{layer.name}' names one param blob twice", span)
    for name in names:
        first = weight_names.setdefault(name, layer.name)
        if first != layer.name:
            raise ArchError(f"layer '{layer.name}' shares weights with layer '{first}' "
                            f"(param name '{name}'), which archc does not model", span)
    for field, count, what in (("propagate_down", len(layer.bottom), "bottom"),
                               ("loss_weight", len(layer.top), "top")):
        given = len(getattr(layer, field))
        if given not in (0, count):
            raise ArchError(f"layer '{layer.name}' gives {given} {field} values for {count} "
                            f"{what} blob(s): Caffe takes none or one per {what}", span)
    if layer.blobs:
        # Caffe would take these as the layer's weights, skip its fillers, and abort on a shape
        # that differs from the one it needs.
        raise ArchError(f"layer '{layer.name}' carries `blobs` in the prototxt: weights belong in "
                        f"the .caffemodel; remove them", span)
    if layer.type == "BatchNorm" and any(param.lr_mult != 0 for param in layer.param):
        raise ArchError(f"BatchNorm layer '{layer.name}' gives its statistics a non-zero lr_mult, "
                        f"which Caffe refuses: remove its `param` specs (or give lr_mult: 0)", span)
    for where, filler, holder in _fillers(layer):
        problem = _filler_problem(where, filler, holder)
        if problem:
            raise ArchError(f"layer '{layer.name}': {where} {problem}, which Caffe aborts on "
                            f"when it sets the layer up: fix or remove the filler", span)


# Caffe's fillers (filler.hpp GetFiller), and what each checks when a layer is set up: fillers run
# at set-up, also in a deploy net, before any weights are loaded.
FILLER_TYPES = ("constant", "gaussian", "positive_unitball", "uniform", "xavier", "msra", "bilinear")


def _fillers(message: Message, prefix: str = "") -> Iterator[tuple[str, Message, Message]]:
    """Every FillerParameter set in a layer's messages, with its path and the message holding it."""
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None or descriptor.is_repeated:
            continue
        path = f"{prefix}{descriptor.name}"
        if descriptor.message_type.name == "FillerParameter":
            yield path, value, message
        else:
            yield from _fillers(value, f"{path}.")


def _filler_problem(where: str, filler: Message, holder: Message) -> str | None:
    # num_output, where the holder has one, is the first axis of the blob the filler fills
    outputs = holder.num_output if "num_output" in holder.DESCRIPTOR.fields_by_name else None
    if filler.type not in FILLER_TYPES:
        return f"has filler type '{filler.type}', not one of Caffe's ({', '.join(FILLER_TYPES)})"
    if filler.type != "gaussian" and filler.sparse != -1:
        return f"sets sparse: {filler.sparse}, which only a gaussian filler takes"
    if filler.type == "gaussian":
        if not filler.std > 0:
            return f"is a gaussian filler with std {short_float(filler.std)}: it must be positive"
        if filler.sparse < -1 or (filler.sparse >= 0 and (outputs is None or filler.sparse > outputs)):
            return (f"is a gaussian filler with sparse: {filler.sparse}: give -1, or at most the "
                    f"layer's num_output")
    if filler.type == "uniform" and filler.min > filler.max:
        return (f"is a uniform filler with min {short_float(filler.min)} above max "
                f"{short_float(filler.max)}")
    if filler.type == "bilinear":  # it fills square 4-D blobs only: a convolution's weights
        try:
            kernel = read_pair(holder, "kernel_size", None) if where.endswith(
                "convolution_param.weight_filler") else None
        except ValueError:  # the convolution's own import says what is wrong with its kernel
            return None
        if kernel is None or kernel[0] != kernel[1]:
            return "is a bilinear filler, which fills only a square convolution kernel"
    return None


def _require_fresh_inputs(layer: Message, span: Span | None, inputs: dict, read: set[str]) -> None:
    """An Input layer takes no bottoms and provides blobs nobody provided or read before."""
    if layer.bottom:
        raise ArchError(f"Input layer '{layer.name}' takes no bottom blobs", span)
    for top in layer.top:
        if top in inputs:
            raise ArchError(f"Input layer '{layer.name}' declares input '{top}' a second time", span)
        if top in read:
            raise ArchError(f"Input layer '{layer.name}' provides '{top}' after a layer already "
                            f"read it: move the Input layer first", span)


def deploy_stages(message: Message) -> frozenset[str]:
    """The stages a deploy net is built with: pycaffe's `Net(file, TEST)` keeps the file's
    `state { stage }` (and sets phase TEST and level 0 whatever the file says)."""
    return frozenset(message.state.stage)


def included_in_deploy_net(layer: Message, stages: frozenset[str]) -> bool:
    """Caffe's NetStateRule filtering for a deploy net: phase TEST, level 0, `stages`."""
    def matches(rule: Message) -> bool:
        return ((not rule.HasField("phase") or rule.phase == TEST_PHASE)
                and (not rule.HasField("min_level") or rule.min_level <= 0)
                and (not rule.HasField("max_level") or rule.max_level >= 0)
                and all(stage in stages for stage in rule.stage)
                and not any(stage in stages for stage in rule.not_stage))
    if layer.include:
        return any(matches(rule) for rule in layer.include)
    return not any(matches(rule) for rule in layer.exclude)


def declared_inputs(message: Message, span: Span | None) -> dict[str, tuple[int, ...]]:
    names = list(message.input)
    if message.input_shape:
        shapes = [tuple(shape.dim) for shape in message.input_shape]
    else:
        dims = list(message.input_dim)
        if len(dims) != 4 * len(names):
            raise ArchError(f"{len(names)} inputs need {4 * len(names)} input_dim values, "
                            f"got {len(dims)}", span)
        shapes = [tuple(dims[i:i + 4]) for i in range(0, len(dims), 4)]
    if len(shapes) != len(names):
        raise ArchError(f"{len(names)} inputs but {len(shapes)} input_shape entries: give one "
                        f"shape per input", span)
    if len(set(names)) != len(names):
        raise ArchError("an input is declared twice: give each `input` once", span)
    return _checked_shapes(dict(zip(names, shapes)), span)


def _checked_shapes(shapes: dict[str, tuple[int, ...]], span: Span | None) -> dict[str, tuple[int, ...]]:
    for name, shape in shapes.items():
        if not shape or min(shape) < 1:
            raise ArchError(f"input '{name}' has shape ({', '.join(map(str, shape))}): every "
                            f"dimension must be at least 1", span)
    return shapes


def input_layer_shapes(layer: Message, span: Span | None) -> dict[str, tuple[int, ...]]:
    shapes = [tuple(shape.dim) for shape in layer.input_param.shape]
    tops = list(layer.top)
    if len(shapes) == 1:
        shapes *= len(tops)
    if len(shapes) != len(tops):
        raise ArchError(f"Input layer '{layer.name}' has {len(tops)} tops but {len(shapes)} shapes: "
                        f"give one shape, or one per top", span)
    return _checked_shapes(dict(zip(tops, shapes)), span)


_TRAINING_DATA = ("a training-only data layer: a deploy net takes its inputs from `input` or an "
                  "Input layer")
_TRAINING_LOSS = ("training-only: it compares outputs with labels, which a deploy net does not "
                  "have; end the net before it (Softmax gives probabilities)")
class NotModelled(ArchError):
    """A layer type or setting the IR cannot represent (a fork's type not declared, N-D
    convolution, ...): Caffe may still run the net, which only Caffe can tell."""


#: Caffe layer types archc refuses to import, and why.
REFUSED_TYPES = {
    **dict.fromkeys(("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData"),
                    _TRAINING_DATA),
    **dict.fromkeys(("SoftmaxWithLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
                     "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss",
                     "Accuracy"), _TRAINING_LOSS),
    "HDF5Output": "training-only: it writes blobs to an HDF5 file as the net runs",
    "Python": "a Python layer runs the code its python_param names, and archc never imports or "
              "runs code a model names",
}


def op_from_layer(layer: Message, dialect: str, span: Span | None, types: ForkTypes) -> Op:
    """The typed IR op of one LayerParameter, Caffe defaults applied; `types`: declared forks'."""
    if layer.type in REFUSED_TYPES:
        raise ArchError(f"layer '{layer.name}' has type '{layer.type}', {REFUSED_TYPES[layer.type]}",
                        span)
    definition = OPS.get(layer.type) or types.get(layer.type)
    if definition is None:
        supported = ", ".join(sorted(OPS) + ["Input"])
        declared = f"; declared: {', '.join(sorted(types))}" if types else ""
        raise NotModelled(f"layer '{layer.name}' has type '{layer.type}', which archc does not "
                          f"support (supported: {supported}{declared}); a fork's type can be "
                          f"declared in an .arch file (`archc diff --types FILE.arch`)", span)
    try:
        return definition.from_caffe(layer, dialect)
    except UnsupportedSetting as error:
        raise NotModelled(f"{layer.type} layer '{layer.name}': {error}", span) from None
    except ValueError as error:
        raise ArchError(f"{layer.type} layer '{layer.name}': {error}", span) from None
