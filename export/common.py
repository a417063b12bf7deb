"""What the export targets share: the refusal error, Caffe's parameter blobs as named tensors,
the net's outputs and batch axis as Caffe sees them, and pooling's geometry spelled for
frameworks that round down.

Each target keeps a registry, Caffe type -> its form of that op or a `Refusal` saying why it has
none; `forms_for` reads it, so an op without either is a named error, never a silent gap.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from archc.errors import ArchError
from archc.ir import Layer, LayerShapes, Net, ShapedNet, infer_shapes
from archc.ir.ops import BatchNorm, Pooling, Scale
from archc.ir.ops.normalization import broadcast_operand

#: layer name -> its parameter blobs, in Caffe's order and shapes (float32)
Parameters = dict[str, list[np.ndarray]]


class ExportError(ArchError):
    """A net that cannot be exported exactly: the message names the layer and the reason."""


@dataclass(frozen=True)
class Refusal:
    """An op with no exact form in a target, and why: registered in place of a form."""

    reason: str


def registrar(forms: dict) -> Callable[[str], Callable[[Callable], Callable]]:
    """The `@form("Type")` decorator that enters a function in one target's registry `forms`."""
    def form(caffe_type: str) -> Callable[[Callable], Callable]:
        def register(function: Callable) -> Callable:
            forms[caffe_type] = function
            return function
        return register
    return form


def refused(target: str, layer: Layer, reason: str) -> ExportError:
    """The error for a layer (or one setting of it) that `target` cannot compute as Caffe does."""
    return ExportError(f"cannot export layer '{layer.name}' ({layer.type}) to {target}: {reason}")


def form_for(target: str, registry: dict[str, Callable | Refusal], layer: Layer) -> Callable:
    """The layer's form in `target`'s registry; an ExportError naming the layer where the op is
    refused, or not registered (an op added to the IR before its export forms)."""
    form = registry.get(layer.type)
    if form is None:
        raise refused(target, layer, "archc has no export form for this op yet")
    if isinstance(form, Refusal):
        raise refused(target, layer, form.reason)
    return form


# ----- parameters: Caffe's blobs as the tensors both targets store ---------------------------

def _weight_and_bias(op, blobs: list[np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip(("weight", "bias"), blobs))


def _batch_norm_statistics(op: BatchNorm, blobs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Caffe stores mean and variance multiplied by a moving-average factor (the third blob) and
    divides by it at every forward pass, in float32, a factor of 0 meaning 0; done here once,
    with the same float32 operations, it gives the statistics Caffe normalises with."""
    if not op.use_global_stats:
        return {}  # Caffe normalises with the batch's own statistics and reads no blob
    factor = np.float32(blobs[2].reshape(-1)[0])
    scale = np.float32(0) if factor == 0 else np.float32(1) / factor
    return {"running_mean": (blobs[0] * scale).astype(np.float32),
            "running_var": (blobs[1] * scale).astype(np.float32)}


#: the blobs of Caffe's recurrent layers, under the names its unrolled nets give them; the
#: x_static transform (third) is there only where the layer reads x_static
_RECURRENT_BLOBS = {"LSTM": ("W_xc", "b_c", "W_xc_static", "W_hc"),
                    "RNN": ("W_xh", "b_h", "W_xh_static", "W_hh", "W_ho", "b_o")}


def _recurrent_weights(op, blobs: list[np.ndarray]) -> dict[str, np.ndarray]:
    names = _RECURRENT_BLOBS[op.caffe_type]
    if len(blobs) < len(names):
        names = names[:2] + names[3:]
    return dict(zip(names, blobs))


def _scale_and_bias(op: Scale, blobs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Scale learns its factors only without a second bottom (which gives them), and its bias
    last where `bias_term`: a lone blob is the bias where there is one."""
    roles = ("weight", "bias")[len(blobs) == 1 and op.bias_term:]
    return dict(zip(roles, blobs))


#: Caffe type -> its blobs as named tensors, where not weight then bias
TENSORS: dict[str, Callable] = {
    "BatchNorm": _batch_norm_statistics,
    "Scale": _scale_and_bias,
    "Bias": lambda op, blobs: dict(zip(("bias",), blobs)),
    "PReLU": lambda op, blobs: {"slope": blobs[0]},
    "Parameter": lambda op, blobs: {"value": blobs[0]},
    "LSTM": _recurrent_weights,
    "RNN": _recurrent_weights,
}


def named_tensors(layer: Layer, blobs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The layer's parameter blobs as the tensors the targets store, by role."""
    return TENSORS.get(layer.type, _weight_and_bias)(layer.op, blobs)


def tensor_shapes(entry: LayerShapes) -> dict[str, tuple[int, ...]]:
    """The roles and shapes of a layer's tensors, from its parameter blobs' shapes alone."""
    blobs = [np.zeros(shape, np.float32) for shape in entry.param_shapes]
    return {role: array.shape for role, array in named_tensors(entry.layer, blobs).items()}


# ----- element-wise ops: Caffe's arithmetic, and the operands Scale and Bias broadcast -------

def caffe_arithmetic(layer: Layer) -> list[tuple[str, np.float32 | None]]:
    """Power, Exp or Log as the operations Caffe applies in turn: ("mul" or "add", a constant),
    ("pow", an exponent), ("exp", None), ("log", None), or ("fill", the value every element
    becomes, the input ignored); without those Caffe skips (a factor of 1, a shift of 0), which
    leave every value as it is. The constants are float32, computed as Caffe computes them (an
    overflow to inf, or a NaN, included)."""
    op = layer.op
    with np.errstate(all="ignore"):
        if layer.type == "Power":
            power, scale, shift = map(np.float32, (op.power, op.scale, op.shift))
            if power * scale == 0:  # Caffe's diff_scale: the output does not depend on the input
                return [("fill", np.float32(1) if power == 0 else np.power(shift, power))]
            operations = [("mul", scale), ("add", shift), ("pow", power)]
        else:
            base, scale, shift = map(np.float32, (op.base, op.scale, op.shift))
            log_base = np.float32(1) if base == -1 else np.log(base)  # a base of -1 is e
            if layer.type == "Exp":  # base ** shift * exp(log(base) * scale * x)
                outer = (np.float32(1) if shift == 0 else
                         np.exp(shift) if base == -1 else np.power(base, shift))
                operations = [("mul", log_base * scale), ("exp", None), ("mul", outer)]
            else:
                operations = [("mul", scale), ("add", shift), ("log", None),
                              ("mul", np.float32(1) / log_base)]
    identities = {"mul": 1, "add": 0, "pow": 1}
    return [(name, operand) for name, operand in operations
            if name not in identities or operand != identities[name]]


def aligned_operand(entry: LayerShapes) -> tuple[int, ...]:
    """The shape that lines Scale's or Bias's operand (its learned blob, or its second bottom) up
    with the input as Caffe applies it: its axes from `axis`, then 1s to broadcast over the rest
    (a scalar applies everywhere, whatever the axis)."""
    op, data = entry.layer.op, entry.inputs[0]
    operand = broadcast_operand(entry.layer.type.lower(), list(entry.inputs), op.axis, op.num_axes)
    if not operand:
        return ()
    return (*operand, *(1,) * (len(data) - normalised_axis(op.axis, len(data)) - len(operand)))


# ----- the net as Caffe runs it ---------------------------------------------------------------

def caffe_outputs(net: Net) -> list[str]:
    """The blobs Caffe makes the net's outputs: written by a layer and read by none after the
    last write, in the order Caffe lists them (by name: it keeps them in a std::set)."""
    available: set[str] = set()
    for layer in net.layers:
        available.difference_update(layer.bottoms)
        available.update(layer.tops)
    return sorted(available)


def batch_axes(net: Net) -> dict[str, tuple[int, ...]] | None:
    """For each blob, the axes whose size is the batch's (None: the net takes only its declared
    batch size, e.g. a Reshape that names it)."""
    try:
        ones, twos = (infer_shapes(replace(net, inputs={name: (batch, *shape[1:])
                                                         for name, shape in net.inputs.items()}))
                      for batch in (1, 2))
    except ArchError:
        return None
    if [e.param_shapes for e in ones.layers] != [e.param_shapes for e in twos.layers]:
        return None
    return {blob: tuple(axis for axis, (a, b) in enumerate(zip(shape, twos.blobs[blob])) if a != b)
            for blob, shape in ones.blobs.items()}


def last_writers(shaped: ShapedNet) -> dict[str, str]:
    """blob -> the layer that writes its final value (in-place layers rewrite blobs)."""
    return {top: entry.layer.name for entry in shaped.layers for top in entry.layer.tops}


def refuse_rewritten_views(target: str, shaped: ShapedNet) -> None:
    """An ExportError naming the first in-place layer that rewrites a view's top (Split's,
    Reshape's, Flatten's...): Caffe's views share their bottom's memory, so the rewrite changes
    the bottom and its other views too, which the exports, computing each blob once, do not."""
    memory: dict[str, str] = {}  # a view's top -> the blob whose memory it shares
    for entry in shaped.layers:
        layer = entry.layer
        if layer.in_place and layer.tops[0] in memory:
            root = memory[layer.tops[0]]
            shared = [root, *(blob for blob, of in memory.items()
                              if of == root and blob != layer.tops[0])]
            raise refused(target, layer, f"it rewrites blob '{layer.tops[0]}' in place, whose "
                          f"memory Caffe shares with {', '.join(map(repr, shared))}, changing "
                          f"them too; give the layer a top of its own")
        if layer.op.is_view(len(layer.bottoms), len(layer.tops)):
            for top in layer.tops:
                memory[top] = memory.get(layer.bottoms[0], layer.bottoms[0])


# ----- pooling: Caffe's windows for frameworks that round down --------------------------------

@dataclass(frozen=True)
class PoolAxis:
    """One spatial axis of a pooling layer: Caffe's windows as padding before and after the input
    that a floor-rounding pool (or one with explicit pads) reproduces, and Caffe's divisors."""

    size: int
    kernel: int
    stride: int
    pad: int
    out: int

    @property
    def pad_after(self) -> int:
        """Caffe's ceil rounding lets the last window overhang the padded input (a window that
        would start in the padding is dropped); padding the end far enough for it makes floor
        rounding count the same windows."""
        return max(self.pad, (self.out - 1) * self.stride + self.kernel - self.size - self.pad)

    def divisors(self) -> np.ndarray:
        """What Caffe's average divides each window by along this axis: the window clipped to
        the padded input (padding counts, the overhang beyond it does not)."""
        starts = np.arange(self.out) * self.stride - self.pad
        return np.minimum(starts + self.kernel, self.size + self.pad) - starts


#: Both targets' refusal of STOCHASTIC pooling: no CPU Caffe computes it to check a form against
STOCHASTIC_POOLING = ("Caffe computes STOCHASTIC pooling on the GPU alone (in TEST phase a "
                      "window's sum of squares over its sum) and aborts on the CPU, so no form "
                      "of it is checked against Caffe: use MAX or AVE")


def pool_axes(entry: LayerShapes) -> tuple[PoolAxis, PoolAxis]:
    op: Pooling = entry.layer.op
    (_, _, height, width), (_, _, out_h, out_w) = entry.inputs[0], entry.output
    return (PoolAxis(height, op.kernel_h, op.stride_h, op.pad_h, out_h),
            PoolAxis(width, op.kernel_w, op.stride_w, op.pad_w, out_w))


def average_correction(entry: LayerShapes) -> np.ndarray | None:
    """out_h x out_w factors turning a full-kernel average of the zero-padded input into Caffe's
    (kernel area / Caffe's divisor); None where Caffe divides every window by the full kernel."""
    rows, columns = pool_axes(entry)
    divisors = np.outer(rows.divisors(), columns.divisors())
    area = rows.kernel * columns.kernel
    if (divisors == area).all():
        return None
    return (area / divisors).astype(np.float32)


def normalised_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


# ----- the structural ops' settings as both targets read them --------------------------------

#: Filter's refusal in both targets
FILTER_REFUSAL = Refusal(
    "its tops keep only the items whose selector is not 0, so their batch size is known only "
    "when it runs, while archc's shapes (and the exported graph's) keep every item")


def crop_window(entry: LayerShapes) -> list[tuple[int, int, int]]:
    """(axis, offset, size) of each axis Crop cuts: from its offset, to the second bottom's size
    (axes it leaves whole are not listed)."""
    data, output = entry.inputs[0], entry.output
    offsets = entry.layer.op.offsets(len(data))
    return [(axis, offset, output[axis])
            for axis, offset in enumerate(offsets, len(data) - len(offsets))
            if offset or output[axis] != data[axis]]


def spp_levels(entry: LayerShapes) -> list[LayerShapes]:
    """SPP's levels as the Pooling layers Caffe runs for it, each named LAYER/levelI."""
    layer = entry.layer
    return [LayerShapes(replace(layer, name=f"{layer.name}/level{index}", op=pooling,
                                tops=(f"{layer.name}/level{index}",)), entry.inputs[:1], (shape,))
            for index, (pooling, shape) in enumerate(layer.op.levels(entry.inputs[0]))]


def reduction_coefficient(entry: LayerShapes) -> np.float32:
    """What Caffe multiplies a reduction by: coeff, for MEAN divided in float32 by the count of
    values reduced (Caffe keeps `coeff / count`, rounded, and scales the sum by it)."""
    op = entry.layer.op
    coefficient = np.float32(op.coeff)
    if op.operation == "MEAN":
        count = int(np.prod(entry.inputs[0][normalised_axis(op.axis, len(entry.inputs[0])):]))
        coefficient = coefficient / np.float32(count)
    return coefficient


def recurrent_refusal(layer: Layer, target: str) -> ExportError | None:
    """The error for an LSTM or RNN whose start state Caffe carries over from its previous forward
    pass; None where the net feeds it (expose_hidden)."""
    if layer.op.expose_hidden:
        return None
    return refused(target, layer, "without expose_hidden, Caffe starts each forward pass from the "
                   "hidden state the previous pass ended with (zeros only on the first), state "
                   "an exported model keeps nowhere; set expose_hidden and feed h_0 (and c_0 for "
                   "an LSTM) as bottoms")


# ----- fork layer types: the semantics each form assumes, checked on the layer ---------------
# A fork type is declared in an .arch file (lib/forks.arch ships them), and a user may declare
# another layer under the same name: a form computes the fork's layer as its source does, and
# refuses, naming the layer, one whose fields, inputs or declared shapes are not that layer's.

def fork_fields(target: str, entry: LayerShapes, fork: str,
                defaults: dict[str, object]) -> dict[str, object]:
    """The layer's declared field values, `defaults` (the fork's own) filling those the
    declaration leaves out (None: required); refused where it declares a field the fork's layer
    does not read, or lacks a required one."""
    layer, values = entry.layer, entry.layer.op.field_values()
    unknown = sorted(set(values) - set(defaults))
    missing = sorted(name for name, default in defaults.items()
                     if default is None and name not in values)
    if unknown or missing:
        problem = (f"declares field '{unknown[0]}'" if unknown else
                   f"lacks field '{missing[0]}'")
        raise refused(target, layer, f"the export computes {layer.type} as {fork}, whose "
                      f"fields are {', '.join(defaults) or 'none'}, and this declaration "
                      f"({layer.op.rules.origin}) {problem}")
    return {**defaults, **values}


def fork_mismatch(target: str, entry: LayerShapes, fork: str, problem: str) -> ExportError:
    """The error for a layer of a fork type whose declared shapes are not the fork layer's."""
    return refused(target, entry.layer, f"the export computes {entry.layer.type} as {fork}, "
                   f"and this layer (declared at {entry.layer.op.rules.origin}) {problem}")


_AXPY = "the SENet fork's Axpy (a * x + y, a of N x C or N x C x 1 x 1)"


def axpy_channels(target: str, entry: LayerShapes) -> int:
    """The channels of an Axpy whose bottoms are the gate a (N x C, or N x C with 1s after),
    x and y (one shape, C channels); its top x's shape."""
    fork_fields(target, entry, _AXPY, {})
    if len(entry.inputs) != 3:
        raise fork_mismatch(target, entry, _AXPY, f"has {len(entry.inputs)} bottoms, not 3")
    gate, x, y = entry.inputs
    if len(x) < 2 or y != x or entry.output != x:
        raise fork_mismatch(target, entry, _AXPY, f"takes x {list(x)} and y {list(y)} to "
                            f"{list(entry.output)}: x and y of one shape (N x C ...) is its top's")
    if gate[:2] != x[:2] or any(side != 1 for side in gate[2:]):
        raise fork_mismatch(target, entry, _AXPY, f"scales x {list(x)} by a of {list(gate)}, "
                            f"not one factor per item and channel")
    return x[1]


_DEPTHWISE = ("the MobileNet fork's ConvolutionDepthwise (one kernel_size x kernel_size filter per "
              "input channel, as many output channels, `group` not read)")


@dataclass(frozen=True)
class DepthwiseWindow:
    """A ConvolutionDepthwise layer as the grouped convolution it computes: `channels` groups of
    one channel each."""

    channels: int
    kernel: int
    stride: int
    pad: int
    dilation: int
    bias_term: bool


def depthwise_window(target: str, entry: LayerShapes) -> DepthwiseWindow:
    """The window of a ConvolutionDepthwise whose declared top and blobs are the fork's: as many
    channels as the input, weights C x 1 x k x k (and a bias of C)."""
    values = fork_fields(target, entry, _DEPTHWISE, {
        "num_output": None, "kernel_size": None, "stride": 1, "pad": 0, "dilation": 1,
        "group": 1, "bias_term": True})
    data = entry.inputs[0]
    if len(data) != 4:
        raise fork_mismatch(target, entry, _DEPTHWISE, f"takes an input of {len(data)} axes, not "
                            f"N x C x H x W")
    window = DepthwiseWindow(data[1], values["kernel_size"], values["stride"], values["pad"],
                             values["dilation"], values["bias_term"])
    extent = window.dilation * (window.kernel - 1) + 1
    sides = tuple((side + 2 * window.pad - extent) // window.stride + 1 for side in data[2:])
    blobs = [(window.channels, 1, window.kernel, window.kernel)]
    if window.bias_term:
        blobs.append((window.channels,))
    if entry.output != (data[0], window.channels, *sides):
        raise fork_mismatch(target, entry, _DEPTHWISE, f"writes {list(entry.output)} from "
                            f"{list(data)}, and the fork's layer {[data[0], window.channels, *sides]}")
    if list(entry.param_shapes) != blobs:
        raise fork_mismatch(target, entry, _DEPTHWISE, f"holds blobs "
                            f"{[list(shape) for shape in entry.param_shapes]}, and the fork's "
                            f"layer {[list(shape) for shape in blobs]}")
    return window


_SHUFFLE = ("ShuffleNet's ShuffleChannel (channels as `group` rows, transposed: input channel "
            "i * C/group + j becomes j * group + i)")


def shuffle_groups(target: str, entry: LayerShapes) -> int:
    """The `group` of a ShuffleChannel whose input's channels it divides, top the input's shape."""
    group = fork_fields(target, entry, _SHUFFLE, {"group": 1})["group"]
    data = entry.inputs[0]
    if len(entry.inputs) != 1 or len(data) < 2 or entry.output != data:
        raise fork_mismatch(target, entry, _SHUFFLE, f"takes {[list(s) for s in entry.inputs]} "
                            f"to {list(entry.output)}: one input of N x C ..., its shape the top's")
    if group < 1 or data[1] % group:
        raise fork_mismatch(target, entry, _SHUFFLE, f"has group {group}, which does not divide "
                            f"its {data[1]} channels")
    return group


#: Both targets' refusals of the fork types whose forms are not defined
FORK_REFUSALS = {
    "Interp": Refusal(
        "the DeepLab/PSPNet fork's Interp is bilinear with corners aligned, on an input cropped by "
        "pad_beg and pad_end, in the fork's own loop; no Caffe here runs it, nor does a net of "
        "Caffe's own layers compute it, so no form of it could be checked against Caffe"),
    "Upsample": Refusal(
        "SegNet's Upsample places each value where its second bottom, a Pooling layer's argmax "
        "mask top, points, and that mask top has no export form (both targets refuse it)"),
}
