"""Caffe weights without Caffe: read and write .caffemodel files, and check them against a net.

A .caffemodel is a binary NetParameter whose layers carry their parameter blobs. archc decodes it
with its own schema (`codegen.schema`), so the check below runs before Caffe is involved: Caffe
itself matches weights to layers by name, silently leaves unmatched layers at their fillers, and
aborts the whole process on a blob of the wrong shape.

Files in Caffe's older V0 and V1 layer formats are upgraded as Caffe upgrades them when it loads
weights (`codegen.upgrade`), so their layers have their current names and types; both blob shape
encodings are read: `shape { dim }` and the legacy num/channels/height/width.

The check covers what Caffe's loader checks before it aborts (`Net::CopyTrainedLayersFrom`,
`Blob::ShapeEquals`, `Blob::FromProto`): the file size its reader accepts, the HDF5 signature that
sends it down another path, the number of blobs, each blob's shape, and the number of values it
copies from `double_data` or `data` and, when present, from `double_diff` or `diff`. Strings that
are not UTF-8 are refused too, as nothing could print or compare them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf.descriptor import FieldDescriptor

from archc.files import FileTooLarge, read_regular_file, write_atomically
from archc.codegen import schema, upgrade
from archc.ir import ArchError, ShapedNet
from archc.ir.ops import ParamBlob, Shape, format_shape

_LEGACY_AXES = ("num", "channels", "height", "width")
# Caffe's ReadProtoFromBinaryFile stops at INT_MAX bytes (kProtoReadBytesLimit) and aborts.
CAFFE_MAX_BYTES = 2 ** 31 - 1
# Caffe reads a file as HDF5 weights where H5Fis_hdf5 finds this signature: at byte 0, 512, 1024,
# 2048 and so on; a .caffemodel holding it there would be read as a broken HDF5 file, an abort.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class WeightsError(ArchError):
    """A .caffemodel that cannot be read, or weights that do not fit the net."""


@dataclass(frozen=True)
class StoredBlob:
    shape: Shape
    #: stored as num/channels/height/width, which Caffe compares after padding the net's blob
    #: shape to 4-D with leading 1s
    legacy: bool
    #: (field, number of values) of the fields Caffe copies, each of which must hold one value
    #: per element: `double_data` where it has any, else `data`; then `double_diff` where it has
    #: any, else `diff` where it has any
    copied: tuple[tuple[str, int], ...]

    def fits(self, expected: Shape) -> bool:
        """Caffe's Blob::ShapeEquals, plus the value counts its FromProto checks."""
        if any(count != math.prod(expected) for _, count in self.copied):
            return False
        if self.legacy:
            return len(expected) <= 4 and (1,) * (4 - len(expected)) + tuple(expected) == self.shape
        return tuple(expected) == self.shape

    def __str__(self) -> str:
        shape = format_shape(self.shape) if self.shape else "scalar"
        wrong = [f"{count} {name} values" for name, count in self.copied
                 if count != math.prod(self.shape)]
        return f"{shape} ({', '.join(wrong)})" if wrong else shape


@dataclass(frozen=True)
class StoredLayer:
    name: str
    type: str
    blobs: tuple[StoredBlob, ...]


def _blob(proto) -> StoredBlob:
    copied = [("double_data", len(proto.double_data)) if proto.double_data
              else ("data", len(proto.data))]
    if proto.double_diff:
        copied.append(("double_diff", len(proto.double_diff)))
    elif proto.diff:
        copied.append(("diff", len(proto.diff)))
    if any(proto.HasField(axis) for axis in _LEGACY_AXES):
        return StoredBlob(tuple(getattr(proto, axis) for axis in _LEGACY_AXES), True, tuple(copied))
    return StoredBlob(tuple(proto.shape.dim), False, tuple(copied))


def decode_caffemodel(data: bytes, path: str = "<caffemodel>") -> list[StoredLayer]:
    """The layers of a serialised .caffemodel, in file order, upgraded to the current format."""
    message = upgraded_caffemodel(data, path).net
    layers = [StoredLayer(layer.name, layer.type, tuple(_blob(b) for b in layer.blobs))
              for layer in message.layer]
    if not layers:
        raise WeightsError(f"{path}: not a Caffe model file (no layers found)")
    return layers


def upgraded_caffemodel(data: bytes, path: str = "<caffemodel>") -> upgrade.UpgradedNet:
    """A serialised .caffemodel as Caffe reads it: upgraded from an older format, all steps."""
    hdf5_at = next((offset for offset in _hdf5_signature_offsets(len(data))
                    if data.startswith(_HDF5_SIGNATURE, offset)), None)
    if hdf5_at is not None:
        raise WeightsError(f"{path} holds HDF5's file signature at byte {hdf5_at}, so Caffe would "
                           f"read it as HDF5 weights, which archc does not check: convert it to "
                           f"a binary .caffemodel")
    message = schema.parse_caffemodel(data, path=path)
    undecodable = _undecodable_string(message)
    if undecodable is not None:
        where, value = undecodable
        raise WeightsError(f"{path}: the {where} is not UTF-8 text ({value[:60]!r}), which a "
                           f"protobuf string must be: fix it in the program that wrote the file")
    try:
        return upgrade.upgrade_net(message)
    except upgrade.UpgradeError as error:
        raise WeightsError(f"{path}: {error.message}") from None


def _hdf5_signature_offsets(size: int) -> list[int]:
    return [0] + [1 << power for power in range(9, size.bit_length())]


def _undecodable_string(message, where: str = "") -> tuple[str, bytes] | None:
    """The first string field of a decoded message whose bytes are not UTF-8 (protobuf hands
    those over as bytes, not str), as (its place, e.g. "layer 3 name", its bytes); else None."""
    for field_, value in message.ListFields():
        if field_.type not in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE):
            continue  # numbers: the blobs' millions of values need no look
        for index, item in enumerate(value if field_.is_repeated else [value]):
            place = f"{where}{field_.name}" + (f" {index + 1}" if field_.is_repeated else "")
            if isinstance(item, bytes):
                return place, item
            if field_.type == FieldDescriptor.TYPE_MESSAGE:
                found = _undecodable_string(item, place + " ")
                if found is not None:
                    return found
    return None


def read_caffemodel(path: str | Path) -> list[StoredLayer]:
    return decode_caffemodel(read_caffemodel_bytes(path), str(path))


def read_caffemodel_bytes(path: str | Path) -> bytes:
    try:
        return read_regular_file(path, CAFFE_MAX_BYTES)
    except FileTooLarge as error:
        raise WeightsError(f"cannot read weights file {path}: {error.size:,} bytes, more than "
                           f"Caffe reads ({CAFFE_MAX_BYTES:,})") from None
    except OSError as error:
        raise WeightsError(f"cannot read weights file {path}: {error.strerror or error}") from None


# --- checking weights against a net ------------------------------------------------------------

#: what a net needs: every layer's name -> the shapes of its parameter blobs (empty for none)
Expected = dict[str, list[Shape]]


def expected_from_ir(shaped: ShapedNet) -> Expected:
    return {entry.layer.name: [tuple(s) for s in entry.param_shapes] for entry in shaped.layers}


@dataclass(frozen=True)
class Mismatch:
    layer: str
    expected: tuple[Shape, ...]
    stored: tuple[StoredBlob, ...]

    def __str__(self) -> str:
        want = ", ".join(format_shape(s) for s in self.expected) or "no blobs"
        have = ", ".join(str(b) for b in self.stored) or "no blobs"
        return f"{self.layer}: the net needs {want}; the weights have {have}"


@dataclass
class WeightsReport:
    missing: list[str] = field(default_factory=list)       # net layers with params, no weights
    extra: list[str] = field(default_factory=list)         # weights for layers the net lacks
    mismatched: list[Mismatch] = field(default_factory=list)
    matched: int = 0                                       # layers whose weights fit

    def acceptable(self, allow_missing: bool = False) -> bool:
        """Mismatches always stop loading (Caffe would abort); missing layers unless allowed."""
        return not self.mismatched and (allow_missing or not self.missing)

    def describe(self, limit: int = 20) -> str:
        lines = [f"{_layers(self.matched)} with matching weights"]
        for title, items in (("missing from the weights (would keep their random fillers)", self.missing),
                             ("mismatched", [str(m) for m in self.mismatched]),
                             ("in the weights but not in the net (ignored)", self.extra)):
            if items:
                lines.append(f"{_layers(len(items))} {title}:")
                lines.extend(f"  {item}" for item in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... and {len(items) - limit} more")
        return "\n".join(lines)


def _layers(count: int) -> str:
    return f"{count} layer" if count == 1 else f"{count} layers"


def compare(expected: Expected, stored: list[StoredLayer]) -> WeightsReport:
    """Match stored layers to the net's by name, the way Caffe's CopyTrainedLayersFrom does: every
    stored layer of a net layer's name is copied in turn, so each must fit (Caffe aborts on the
    first that does not, a second copy of a name included)."""
    report = WeightsReport()
    for layer in stored:
        shapes = expected.get(layer.name)
        fits = len(layer.blobs) == len(shapes or ()) and all(
            b.fits(s) for b, s in zip(layer.blobs, shapes or ()))
        if shapes is not None and not fits:
            report.mismatched.append(Mismatch(layer.name, tuple(shapes), layer.blobs))
    stored_names = {layer.name for layer in stored}
    unfit = {mismatch.layer for mismatch in report.mismatched}
    report.missing = [name for name, shapes in expected.items() if shapes and name not in stored_names]
    report.matched = sum(1 for name, shapes in expected.items()
                         if shapes and name in stored_names and name not in unfit)
    report.extra = [layer.name for layer in stored if layer.name not in expected and layer.blobs]
    return report


def check(expected: Expected, weights_path: str | Path, *, allow_missing: bool = False) -> WeightsReport:
    """Compare, and raise WeightsError naming the layers when the weights must not be loaded."""
    report = compare(expected, read_caffemodel(weights_path))
    if not report.acceptable(allow_missing):
        hint = "" if report.mismatched else " (pass --allow-missing to load anyway)"
        raise WeightsError(f"{weights_path} does not fit the net{hint}:\n{report.describe()}")
    return report


def read_parameters(path: str | Path, shaped: ShapedNet) -> dict[str, list[np.ndarray]]:
    """The values of every layer's parameter blobs, float32 in the net's shapes, as Caffe would
    load them (by layer name, a later stored layer of a name replacing an earlier one). Raises
    WeightsError when they do not fit, or a layer with parameters has none."""
    expected = expected_from_ir(shaped)
    check(expected, path)
    message = schema.parse_caffemodel(Path(path).read_bytes(), path=str(path))
    values: dict[str, list[np.ndarray]] = {}
    for layer in [*message.layer, *message.layers]:
        if expected.get(layer.name):
            values[layer.name] = [
                np.asarray(blob.data or blob.double_data, np.float32).reshape(shape)
                for blob, shape in zip(layer.blobs, expected[layer.name])]
    return values


# --- writing weights ------------------------------------------------------------------------

#: one layer's stored parameters: (name, Caffe type, blobs)
LayerWeights = tuple[str, str, list[np.ndarray]]


def _packed_floats(values: np.ndarray) -> bytes:
    """BlobProto field 5 (`repeated float data [packed]`) encoded directly: far faster than
    appending millions of Python floats to a protobuf container."""
    return schema.length_delimited(5, np.ascontiguousarray(values, dtype="<f4").tobytes())


def encode_caffemodel(layers: list[LayerWeights], net_name: str = "") -> bytes:
    message = schema.net_parameter_class()(name=net_name)
    for name, type_, blobs in layers:
        layer = message.layer.add(name=name, type=type_)
        for values in blobs:
            blob = layer.blobs.add()
            blob.shape.dim.extend(values.shape)
            blob.MergeFromString(_packed_floats(values))
    return message.SerializeToString()


def write_caffemodel(path: str | Path, layers: list[LayerWeights], net_name: str = "") -> None:
    """Write the whole file or nothing (through a temporary file renamed into place)."""
    data = encode_caffemodel(layers, net_name)
    try:
        write_atomically(Path(path), data)
    except OSError as error:
        raise WeightsError(f"cannot write {path}: {error.strerror or error}") from None


def initial_weights(shaped: ShapedNet, seed: int = 0) -> list[LayerWeights]:
    """Filler-initialised weights for every layer with parameters, each blob filled as its op
    definition says (`ParamBlob.filler`): He-normal weights, zero biases and means, ones for
    variances and scales, a quarter for PReLU's slopes."""
    rng = np.random.default_rng(seed)
    return [(entry.layer.name, entry.layer.type, [_filled(blob, rng) for blob in blobs])
            for entry in shaped.layers if (blobs := entry.layer.op.param_blobs(list(entry.inputs)))]


_CONSTANTS = {"zeros": 0.0, "ones": 1.0, "quarters": 0.25}


def _filled(blob: ParamBlob, rng: np.random.Generator) -> np.ndarray:
    if blob.filler == "he_normal":
        fan_in = math.prod(blob.shape[1:])
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), blob.shape).astype(np.float32)
    return np.full(blob.shape, _CONSTANTS[blob.filler], np.float32)
