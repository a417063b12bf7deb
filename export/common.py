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
from archc.ir.ops import BatchNorm, Pooling

#: layer name -> its parameter blobs, in Caffe's order and shapes (float32)
Parameters = dict[str, list[np.ndarray]]


class ExportError(ArchError):
    """A net that cannot be exported exactly: the message names the layer and the reason."""


@dataclass(frozen=True)
class Refusal:
    """An op with no exact form in a target, and why: registered in place of a form."""

    reason: str


#: Ops that came with Caffe's whole vocabulary after the exporters were written: both targets
#: refuse them by name until each form is written and checked against Caffe blob by blob.
NOT_YET_EXPORTED = dict.fromkeys((
    "AbsVal", "BNLL", "Bias", "Clip", "ELU",
    "Exp", "Log", "PReLU",
    "Parameter", "Power", "Silence", "Split", "Swish", "TanH",
    "Threshold"), Refusal("no form is written for this op yet (none checked against "
                                  "Caffe); the net's other ops export"))


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


#: Caffe type -> its blobs as named tensors, where not weight then bias
TENSORS: dict[str, Callable] = {"BatchNorm": _batch_norm_statistics, "LSTM": _recurrent_weights,
                                "RNN": _recurrent_weights}


def named_tensors(layer: Layer, blobs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The layer's parameter blobs as the tensors the targets store, by role."""
    return TENSORS.get(layer.type, _weight_and_bias)(layer.op, blobs)


def tensor_shapes(entry: LayerShapes) -> dict[str, tuple[int, ...]]:
    """The roles and shapes of a layer's tensors, from its parameter blobs' shapes alone."""
    blobs = [np.zeros(shape, np.float32) for shape in entry.param_shapes]
    return {role: array.shape for role, array in named_tensors(entry.layer, blobs).items()}


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


def unwritten_scale(entry: LayerShapes) -> str | None:
    """Why a Scale layer is beyond the one form both targets write and check against Caffe, a
    learned factor per channel (axis 1); None where it is that form."""
    op = entry.layer.op
    if len(entry.inputs) > 1:
        return ("a second input as the factor (SE-BN-Inception's gate) has no form written yet "
                "(none checked against Caffe)")
    if normalised_axis(op.axis, len(entry.inputs[0])) != 1 or op.num_axes != 1:
        return (f"only a factor per channel (axis 1, num_axes 1) has a form yet, and this layer "
                f"has axis {op.axis}, num_axes {op.num_axes}")
    return None
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
