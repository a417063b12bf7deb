"""Semantic diff of two Caffe prototxts: what would make the networks, or their weights, differ.

Both files are reduced to a normal form and compared field by field, layers matched by name; a
file in Caffe's old V0 or V1 format is first upgraded as Caffe upgrades it (`codegen.upgrade`):
- every Caffe field of a layer's own `<type>_param` message is compared, with Caffe's defaults
  filled in (so `bias_term: true` equals leaving it out), including fields the IR does not model;
- equivalent spellings collapse: `kernel_size` vs `kernel_h`/`kernel_w` (and stride, pad,
  dilation), `ceil_mode: false` vs `round_mode: FLOOR`, `concat_dim` vs `axis`, `input` +
  `input_shape`/`input_dim` vs an `Input` layer, an unset `use_global_stats` (a deploy net runs in
  the TEST phase) vs `true`, SUM coefficients that are all 1 (one per operand) vs none;
- a layer's own `phase` (TEST unless set) and its named, shared parameter blobs count;
- an Eltwise is commutative, so its operands (each with its coefficient) are compared as a
  multiset; Concat order is the channel order and stays significant;
- each bottom is read at a version (how many layers have written that blob so far), so
  reordering in-place layers on one blob (BatchNorm -> Scale -> ReLU) is a difference even though
  the blob names agree, while renaming a layer is reported only once;
- ignored as training-only or cosmetic: fillers, `param { lr_mult decay_mult }`, stored `blobs`,
  the computation `engine`, the net's name, and layers a deploy net leaves out (Caffe's
  include/exclude rules for phase TEST, level 0 and the file's `state { stage }`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from google.protobuf.message import Message

from archc.codegen.parse import (TEST_PHASE, Prototxt, declared_inputs, deploy_stages,
                                 included_in_deploy_net, input_layer_shapes, read_prototxt)
from archc.ir import OPS, ArchError
from archc.ir.ops import format_shape
from archc.ir.ops.base import read_pair, short_float

# Wiring, phase and weight sharing are compared separately; include/exclude are resolved by the
# deploy-net filter.
IGNORED_LAYER_FIELDS = {"name", "type", "bottom", "top", "param", "blobs", "include", "exclude", "phase"}
IGNORED_FIELDS = {"engine"}
IGNORED_MESSAGE_TYPES = {"FillerParameter"}
# Types outside the IR whose parameter message the schema carries.
EXTRA_PARAM_MESSAGES = {"Input": "input_param"}
SPATIAL_PAIRS = {"Convolution": (("kernel_size", None), ("stride", 1), ("pad", 0), ("dilation", 1)),
                 "Deconvolution": (("kernel_size", None), ("stride", 1), ("pad", 0), ("dilation", 1)),
                 "Im2col": (("kernel_size", None), ("stride", 1), ("pad", 0), ("dilation", 1)),
                 "Pooling": (("kernel_size", None), ("stride", 1), ("pad", 0))}


@dataclass
class NormalLayer:
    type: str
    bottoms: tuple[tuple[str, int], ...]  # (blob, how many layers had written it before)
    tops: tuple[str, ...]
    fields: dict[str, object]
    commutative: bool = False


@dataclass
class NormalNet:
    inputs: dict[str, tuple[int, ...]]
    layers: dict[str, NormalLayer] = field(default_factory=dict)


def diff_texts(text_a: str, text_b: str, path_a: str = "A", path_b: str = "B") -> list[Difference]:
    """The differences between two prototxt texts (raises ArchError if either is unreadable)."""
    return diff_nets(normalise(read_prototxt(text_a, path_a)), normalise(read_prototxt(text_b, path_b)))


def normalise(proto: Prototxt) -> NormalNet:
    """The normal form of a parsed prototxt; duplicate layer names are an ArchError."""
    message = proto.message
    net = NormalNet(declared_inputs(message, proto.input_span))
    writes = {name: 1 for name in net.inputs}
    stages = deploy_stages(message)
    included = [(layer, span) for layer, span in zip(message.layer, proto.layer_spans)
                if included_in_deploy_net(layer, stages)]
    # a param name matters only when layers share the blob it names
    owners = Counter(name for layer, _ in included for name in {p.name for p in layer.param if p.name})
    shared = {name for name, count in owners.items() if count > 1}
    for layer, span in included:
        if layer.name in net.layers:
            raise ArchError(f"duplicate layer name '{layer.name}'", span)
        if layer.type == "Input":
            for top, shape in input_layer_shapes(layer, span).items():
                net.inputs[top] = shape
                writes[top] = 1
            continue
        try:
            net.layers[layer.name] = _normal_layer(layer, proto.dialect, writes, shared)
        except ValueError as error:
            raise ArchError(f"{layer.type} layer '{layer.name}': {error}", span) from None
        for top in layer.top:
            writes[top] = writes.get(top, 0) + 1
    return net


def _normal_layer(layer: Message, dialect: str, writes: dict[str, int],
                  shared: set[str]) -> NormalLayer:
    bottoms = tuple((blob, writes.get(blob, 0)) for blob in layer.bottom)
    fields = flatten(layer, skip=IGNORED_LAYER_FIELDS | _foreign_params(layer))
    # A layer runs in its own phase if it sets one, else the net's: TEST for a deploy net.
    test_phase = not layer.HasField("phase") or layer.phase == TEST_PHASE
    fields["phase"] = "TEST" if test_phase else "TRAIN"
    _weight_sharing(layer, fields, shared)
    commutative = False
    if layer.type in SPATIAL_PAIRS:
        _normalise_pairs(layer, SPATIAL_PAIRS[layer.type], fields)
    if layer.type == "Pooling":
        _normalise_rounding(layer.pooling_param, dialect, fields)
    elif layer.type == "Concat":
        concat = layer.concat_param
        if concat.HasField("concat_dim") and not concat.HasField("axis"):
            fields["concat_param.axis"] = concat.concat_dim
        del fields["concat_param.concat_dim"]
    elif layer.type == "BatchNorm" and not layer.batch_norm_param.HasField("use_global_stats"):
        fields["batch_norm_param.use_global_stats"] = test_phase
    elif layer.type == "Eltwise":
        bottoms, commutative = _commutative_operands(layer, bottoms, fields)
    return NormalLayer(layer.type, bottoms, tuple(layer.top), fields, commutative)


def _weight_sharing(layer: Message, fields: dict[str, object], shared: set[str]) -> None:
    """Parameter blobs shared with other layers (by a param name that several layers give) and
    how sharing is checked; a name only one layer gives, and the learning-rate and decay
    multipliers of `param`, change nothing at inference and are ignored."""
    for index, param in enumerate(layer.param):
        if param.name not in shared:
            continue
        fields[f"param[{index}].name"] = param.name
        if param.HasField("share_mode"):
            fields[f"param[{index}].share_mode"] = _scalar(
                param.DESCRIPTOR.fields_by_name["share_mode"], param.share_mode)


def _foreign_params(layer: Message) -> set[str]:
    """The `*_param` fields that do not belong to this layer's type (Caffe ignores them)."""
    own = OPS[layer.type].param_message if layer.type in OPS else EXTRA_PARAM_MESSAGES.get(layer.type)
    params = {f.name for f in layer.DESCRIPTOR.fields if f.name.endswith("_param")}
    if own is None:  # a type the schema has no message for: keep whatever parameters are set
        return {name for name in params if not layer.HasField(name)}
    return params - {own}


def flatten(message: Message, prefix: str = "", skip: set[str] = frozenset()) -> dict[str, object]:
    """Every field of `message` as dotted path -> comparable value, Caffe defaults filled in."""
    fields: dict[str, object] = {}
    for descriptor in message.DESCRIPTOR.fields:
        name = descriptor.name
        if name in skip or name in IGNORED_FIELDS:
            continue
        if descriptor.message_type and descriptor.message_type.name in IGNORED_MESSAGE_TYPES:
            continue
        key = prefix + name
        value = getattr(message, name)
        if descriptor.message_type and descriptor.message_type.name == "BlobShape":
            fields[key] = tuple(tuple(v.dim) for v in value) if descriptor.is_repeated else tuple(value.dim)
        elif descriptor.message_type and descriptor.is_repeated:
            fields[key] = tuple(tuple(sorted(flatten(item).items())) for item in value)
        elif descriptor.message_type:
            fields.update(flatten(value, key + "."))
        elif descriptor.is_repeated:
            fields[key] = tuple(_scalar(descriptor, item) for item in value)
        else:
            fields[key] = _scalar(descriptor, value)
    return fields


def _scalar(descriptor, value: object) -> object:
    if descriptor.enum_type is not None:
        return descriptor.enum_type.values_by_number[value].name
    if descriptor.type == descriptor.TYPE_FLOAT:
        return short_float(value)
    return value


@dataclass(frozen=True)
class HeightWidth:
    """A setting Caffe spells `name` when square and `name_h`/`name_w` otherwise: one value to
    compare, shown the way a file would write it."""

    name: str
    height: int
    width: int

    def __str__(self) -> str:
        if self.height == self.width:
            return str(self.height)
        base = "kernel" if self.name == "kernel_size" else self.name
        return f"{base}_h {self.height}, {base}_w {self.width}"


def _normalise_pairs(layer: Message, names, fields: dict[str, object]) -> None:
    param_name = OPS[layer.type].param_message if layer.type in OPS else EXTRA_PARAM_MESSAGES[layer.type]
    params = getattr(layer, param_name)
    for name, default in names:
        base = "kernel" if name == "kernel_size" else name
        value = read_pair(params, name, default)
        for key in (name, f"{base}_h", f"{base}_w"):
            fields.pop(f"{param_name}.{key}", None)
        if value is not None:
            fields[f"{param_name}.{name}"] = HeightWidth(name, *value)


def _normalise_rounding(params: Message, dialect: str, fields: dict[str, object]) -> None:
    if dialect == "round_mode":
        floor = params.round_mode == params.FLOOR
        del fields["pooling_param.round_mode"]
    else:
        floor = not params.ceil_mode
        del fields["pooling_param.ceil_mode"]
    fields["pooling_param.rounding"] = "floor" if floor else "ceil"


def _commutative_operands(layer: Message, bottoms, fields: dict[str, object]):
    """Sort an Eltwise's operands, each with its coefficient; SUM with all coefficients 1 has none."""
    coeffs = list(fields.pop("eltwise_param.coeff"))
    if coeffs and (fields["eltwise_param.operation"] != "SUM" or len(coeffs) != len(bottoms)):
        fields["eltwise_param.coeff"] = tuple(coeffs)  # Caffe refuses these: compare as written
        return bottoms, False
    if all(c == 1 for c in coeffs):
        coeffs = []
    if not coeffs:
        return tuple(sorted(bottoms)), True
    operands = sorted(zip(bottoms, coeffs))
    fields["eltwise_param.coeff"] = tuple(c for _, c in operands)
    return tuple(b for b, _ in operands), True


@dataclass(frozen=True)
class Difference:
    subject: str   # "layer 'res2a'" or "input 'data'"
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


def diff_nets(a: NormalNet, b: NormalNet) -> list[Difference]:
    """All differences, inputs first, then layers in A's order, then layers only in B."""
    found: list[Difference] = []
    for name in list(a.inputs) + [n for n in b.inputs if n not in a.inputs]:
        subject = f"input '{name}'"
        if name not in b.inputs:
            found.append(Difference(subject, "only in A"))
        elif name not in a.inputs:
            found.append(Difference(subject, "only in B"))
        elif a.inputs[name] != b.inputs[name]:
            found.append(Difference(subject, f"shape {format_shape(a.inputs[name])} in A, "
                                              f"{format_shape(b.inputs[name])} in B"))
    for name, layer in a.layers.items():
        other = b.layers.get(name)
        if other is None:
            found.append(Difference(f"layer '{name}'", f"only in A ({layer.type})"))
        else:
            found.extend(Difference(f"layer '{name}'", d) for d in _layer_differences(layer, other))
    found.extend(Difference(f"layer '{name}'", f"only in B ({layer.type})")
                 for name, layer in b.layers.items() if name not in a.layers)
    return found


def _layer_differences(a: NormalLayer, b: NormalLayer) -> list[str]:
    if a.type != b.type:
        return [f"type {a.type} in A, {b.type} in B"]
    found = []
    blobs_a, blobs_b = [blob for blob, _ in a.bottoms], [blob for blob, _ in b.bottoms]
    if blobs_a != blobs_b:
        operation = _OPERATION_NAMES.get(a.fields.get("eltwise_param.operation"), "the operation")
        order = f" (operand order ignored: {operation} is commutative)" if a.commutative else ""
        found.append(f"bottoms {blobs_a} in A, {blobs_b} in B{order}")
    else:
        for (blob, version_a), (_, version_b) in zip(a.bottoms, b.bottoms):
            if version_a != version_b:
                found.append(f"reads blob '{blob}' at another point of its in-place chain: "
                             f"after {version_a} write(s) in A, {version_b} in B")
    if a.tops != b.tops:
        found.append(f"tops {list(a.tops)} in A, {list(b.tops)} in B")
    for key in sorted(set(a.fields) | set(b.fields)):
        value_a, value_b = a.fields.get(key), b.fields.get(key)
        if value_a != value_b:
            found.append(f"{key}: {_show(value_a)} in A, {_show(value_b)} in B")
    return found


_OPERATION_NAMES = {"SUM": "the sum", "PROD": "the product", "MAX": "the maximum"}


def _show(value: object) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
