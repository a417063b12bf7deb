"""Caffemodel fuzzing: weights files mutated field by field, and the property archc must keep.

Shared by `tests/test_fuzz_weights.py` (a bounded run in the test suite) and `bench/fuzz_soak.py`
(the long run). Inputs are the weights of two small nets, one in the current format (a convolution
with bias, BatchNorm, Scale, an InnerProduct: blobs of 1, 2 and 4 axes) and one as pre-2015 files
store them (V1 `layers` with legacy num/channels/height/width blobs), with one to three mutations
of what Caffe's loader reads: the number of values in `data`, `diff`, `double_data` and
`double_diff`; blob shapes and legacy dimensions; blobs added, dropped or swapped; layers
duplicated, dropped or renamed; names, types and other strings that are not UTF-8; `layer` and
legacy `layers` entries in one file; unknown fields nested deeply; HDF5's signature where Caffe
looks for it; truncation and flipped bytes.

The property (`run_case`): `archc weights FILE` exits 0 (a listing) or 2 (one `archc: error:`
line); `archc weights FILE --check NET` exits 0, 1 (the report, ending `refused:`) or 2 (the same
one line); never a traceback, an internal error or a hang; and where the check calls the weights a
fit, real Caffe sets NET up and copies them in without aborting (`caffe_child.CaffeChild`).
"""
from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from pathlib import Path

from archc.codegen import schema
from archc.codegen.parse import import_net
from archc.ir import infer_shapes
from archc.runtime import weights
from archfuzz import Case, Outcome, call_cli
from caffe_child import CaffeChild

NETS = {
    "current": """name: "current"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "conv1_bn" type: "BatchNorm" bottom: "conv1" top: "conv1"
  batch_norm_param { use_global_stats: true } }
layer { name: "conv1_scale" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 5 } }
""",
    # as a V1 net has it: no BatchNorm, and its weights in `layers` with 4-D legacy blobs
    "legacy": """name: "legacy"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 5 } }
""",
}
_V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18}   # V1LayerParameter.LayerType
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_NOT_UTF8 = [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]
_DIMS = [0, -1, 1, 2, 3, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 3, 2 ** 63 - 1, -2 ** 63]


@functools.cache
def base_weights(net: str) -> bytes:
    """The net's filler weights as a .caffemodel, in its format."""
    layers = weights.initial_weights(infer_shapes(import_net(NETS[net])), seed=1)
    if net == "current":
        return weights.encode_caffemodel(layers, net)
    message = schema.net_parameter_class()(name=net)
    for name, type_, blobs in layers:
        layer = message.layers.add(name=name, type=_V1_TYPES[type_])
        for values in blobs:
            padded = (1,) * (4 - values.ndim) + values.shape
            blob = layer.blobs.add(num=padded[0], channels=padded[1], height=padded[2],
                                   width=padded[3])
            blob.data.extend(values.ravel().tolist())
    message.layers.add(name="relu1", type=_V1_TYPES["ReLU"])
    return message.SerializeToString()


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(encoded + bytes([value]))


# ----- mutations ---------------------------------------------------------------------------------

@dataclass
class Mutant:
    """A NetParameter being mutated, then its bytes: string placeholders become bytes that are not
    UTF-8, and byte-level edits apply, when it is serialised."""

    message: object
    rng: random.Random
    placeholders: dict[bytes, bytes]
    byte_edits: list
    done: list[str]

    def layers(self):
        return self.message.layers if len(self.message.layers) else self.message.layer

    def blobs(self) -> list:
        return [blob for layer in self.layers() for blob in layer.blobs]

    def serialise(self) -> bytes:
        data = self.message.SerializeToString()
        for placeholder, replacement in self.placeholders.items():
            data = data.replace(placeholder, replacement)
        for edit in self.byte_edits:
            data = edit(data)
        return data


def _count(blob) -> int:
    if any(blob.HasField(axis) for axis in ("num", "channels", "height", "width")):
        return blob.num * blob.channels * blob.height * blob.width
    return math.prod(blob.shape.dim)


def _some_count(rng: random.Random, right: int) -> int:
    return rng.choice([right, right, 0, 1, max(0, right - 1), right + 1, 2 * right, 2])


def _set_values(field, count: int) -> None:
    del field[:]
    field.extend([0.25] * max(0, min(count, 100_000)))


def mutate_values(m: Mutant) -> None:
    """The value fields Caffe copies: data, double_data, diff, double_diff."""
    if not m.blobs():  # all dropped by an earlier mutation
        return
    blob = m.rng.choice(m.blobs())
    field = m.rng.choice(["data", "double_data", "diff", "double_diff"])
    count = _some_count(m.rng, _count(blob))
    _set_values(getattr(blob, field), count)
    if field == "double_data" and m.rng.random() < 0.3:
        _set_values(blob.data, _some_count(m.rng, _count(blob)))
    m.done.append(f"{field} of {count}")


def mutate_shape(m: Mutant) -> None:
    """A dimension changed, added or dropped; or the shape given as legacy dimensions too."""
    if not m.blobs():
        return
    blob = m.rng.choice(m.blobs())
    legacy = [axis for axis in ("num", "channels", "height", "width") if blob.HasField(axis)]
    move = m.rng.randrange(5)
    if legacy and move < 2:
        axis = m.rng.choice(["num", "channels", "height", "width"])
        value = m.rng.choice([v for v in _DIMS if -2 ** 31 <= v < 2 ** 31])
        setattr(blob, axis, value)
        m.done.append(f"legacy {axis} {value}")
    elif move == 0 and len(blob.shape.dim):
        index = m.rng.randrange(len(blob.shape.dim))
        grown = blob.shape.dim[index] + 1  # an int64: a dimension already at its top stays
        blob.shape.dim[index] = m.rng.choice(_DIMS + [grown if grown < 2 ** 63 else 2 ** 63 - 1])
        m.done.append(f"dim {index} {blob.shape.dim[index]}")
    elif move == 1:  # a leading or trailing 1 added, or a dimension dropped
        dims = list(blob.shape.dim)
        at = m.rng.randint(0, len(dims))
        del blob.shape.dim[:]
        blob.shape.dim.extend(dims[:at] + [1] + dims[at:] if m.rng.random() < 0.7
                              else dims[:at] + dims[at + 1:])
        m.done.append(f"shape {list(blob.shape.dim)}")
    elif move == 2:
        padded = [1] * (4 - len(blob.shape.dim)) + list(blob.shape.dim)
        for axis, value in zip(("num", "channels", "height", "width"), padded[-4:]):
            setattr(blob, axis, value)
        if m.rng.random() < 0.5:
            blob.ClearField("shape")
        m.done.append("legacy dims")
    elif move == 3:
        setattr(blob, m.rng.choice(["num", "channels", "height", "width"]), m.rng.choice([1, 4, 5]))
        m.done.append("one legacy dim")
    else:
        blob.ClearField("shape")
        m.done.append("no shape")


def mutate_blob_list(m: Mutant) -> None:
    with_blobs = [layer for layer in m.layers() if len(layer.blobs)]
    if not with_blobs:
        return
    layer = m.rng.choice(with_blobs)
    move = m.rng.randrange(3)
    if move == 0:
        del layer.blobs[m.rng.randrange(len(layer.blobs))]
        m.done.append(f"{layer.name}: a blob dropped")
    elif move == 1:
        layer.blobs.add().CopyFrom(m.rng.choice(layer.blobs))
        m.done.append(f"{layer.name}: a blob added")
    elif len(layer.blobs) > 1:
        first, second = type(layer.blobs[0])(), type(layer.blobs[0])()
        first.CopyFrom(layer.blobs[0])
        second.CopyFrom(layer.blobs[1])
        layer.blobs[0].CopyFrom(second)
        layer.blobs[1].CopyFrom(first)
        m.done.append(f"{layer.name}: blobs swapped")


def mutate_layers(m: Mutant) -> None:
    layers = m.layers()
    if not len(layers):
        return
    layer = m.rng.choice(layers)
    move = m.rng.randrange(4)
    if move == 0:  # Caffe copies every stored layer of a name in turn
        copy = layers.add()
        copy.CopyFrom(layer)
        if m.rng.random() < 0.5 and len(copy.blobs):
            _set_values(copy.blobs[0].data, _count(copy.blobs[0]) + 1)
        m.done.append(f"{layer.name} twice")
    elif move == 1:
        m.done.append(f"{layer.name} dropped")
        layers.remove(layer)
    else:
        layer.name = m.rng.choice([other.name for other in layers] + ["", "zz", "conv1 ", "fc\n"])
        m.done.append(f"renamed {layer.name!r}")


def mutate_strings(m: Mutant) -> None:
    """A layer's name, type, bottom or top, or the net's name, holding bytes that are not UTF-8."""
    text = f"~fuzz{len(m.placeholders):02d}~"  # replaced by as many bytes, lengths unchanged
    field = m.rng.choice(["name", "type", "bottom", "top", "net name"]) if len(m.layers()) \
        else "net name"
    layer = m.rng.choice(m.layers()) if len(m.layers()) else None
    if field == "net name":
        m.message.name = text
    elif field in ("bottom", "top"):
        getattr(layer, field).append(text)
    elif field == "type" and m.message.layers is m.layers():
        layer.name = text  # V1 types are enum numbers: a name instead
    else:
        setattr(layer, field, text)
    m.placeholders[text.encode()] = (m.rng.choice(_NOT_UTF8) * 8)[:len(text)]
    m.done.append(f"{field} not UTF-8")


def mutate_format(m: Mutant) -> None:
    """`layer` entries and legacy `layers` ones in one file, however written."""
    move = m.rng.randrange(3)
    if move == 0:
        m.byte_edits.append(lambda data: data + b"\x12\x00")  # an empty `layers` entry
        m.done.append("an empty layers entry")
    elif move == 1:
        m.message.layers.add(name="extra", type=_V1_TYPES["ReLU"])
        m.done.append("a V1 layer added")
    else:
        m.message.layer.add(name="extra", type="ReLU")
        m.done.append("a current layer added")


def mutate_bytes(m: Mutant) -> None:
    rng = m.rng
    move = rng.randrange(5)
    if move == 0:
        cut = rng.random()
        m.byte_edits.append(lambda data: data[:int(len(data) * cut)])
        m.done.append(f"cut at {cut:.2f}")
    elif move == 1:
        where, value = rng.random(), rng.randrange(256)
        m.byte_edits.append(lambda data: data[:int(len(data) * where)] + bytes([value])
                            + data[int(len(data) * where) + 1:])
        m.done.append(f"byte {value} at {where:.2f}")
    elif move == 2:  # where H5Fis_hdf5 looks, or near it
        offset = rng.choice([0, 512, 1024, 2048, 513, 1000])
        m.byte_edits.append(lambda data: data[:offset] + _HDF5_SIGNATURE + data[offset + 8:]
                            if len(data) > offset + 8 else data)
        m.done.append(f"HDF5 signature at {offset}")
    elif move == 3:  # unknown fields, nested as groups around the parsers' recursion limits
        depth = rng.choice([1, 50, 99, 100, 101, 150, 3000])
        number = rng.choice([999, 17, 536870911])
        start, end = (number << 3 | 3), (number << 3 | 4)
        group = _varint(start) * depth + _varint(end) * depth
        m.byte_edits.append(lambda data: data + group)
        m.done.append(f"unknown group {number} nested {depth}")
    else:
        number = rng.choice([1, 3, 1000])
        m.byte_edits.append(lambda data: data + schema.length_delimited(number, rng.randbytes(8)))
        m.done.append(f"field {number} of 8 random bytes")


MUTATIONS = [(mutate_values, 4), (mutate_shape, 3), (mutate_blob_list, 1), (mutate_layers, 2),
             (mutate_strings, 1), (mutate_format, 1), (mutate_bytes, 2)]


def random_case(rng: random.Random) -> Case:
    """One mutated weights file for one of the nets, as a Case: files, the model, the CLI args."""
    net = rng.choice(list(NETS))
    message = schema.parse_caffemodel(base_weights(net))
    mutant = Mutant(message, rng, {}, [], [])
    functions, weights_ = zip(*MUTATIONS)
    for mutation in rng.choices(functions, weights_, k=rng.choice([1, 1, 2, 3])):
        mutation(mutant)
    args = ["--allow-missing"] if rng.random() < 0.2 else []
    return Case({"w.caffemodel": mutant.serialise(), "net.prototxt": NETS[net]}, "net.prototxt",
                args, f"{net}: {'; '.join(mutant.done)}")


# ----- the property ------------------------------------------------------------------------------

def one_error_line(stderr: str) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("archc: error: ")


def run_case(case: Case, directory: Path, caffe: CaffeChild | None, deadline_s: float) -> Outcome:
    """Write the case's files into `directory`, run both commands and, where the check calls the
    weights a fit, Caffe (skipped where `caffe` is None)."""
    for name, content in case.files.items():
        (directory / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    weights_path, model = str(directory / "w.caffemodel"), str(directory / case.model)
    code, _, stderr, problem = call_cli(["weights", weights_path], deadline_s)
    if problem or code not in (0, 2) or (code == 2 and not one_error_line(stderr)):
        return Outcome(code, stderr, problem or f"listing: exit {code}, {stderr.strip()[-300:]!r}")
    listed = code
    code, stdout, stderr, problem = call_cli(["weights", weights_path, "--check", model, *case.args],
                                             deadline_s)
    if problem:
        return Outcome(code, stderr, problem)
    if code not in (0, 1, 2) or (code == 2 and not one_error_line(stderr)) or \
            (code == 1 and "refused: " not in stdout) or "internal error" in stderr:
        return Outcome(code, stderr, f"check: exit {code}, {stderr.strip()[-300:]!r}")
    if (listed == 2) != (code == 2):
        return Outcome(code, stderr, f"the listing exits {listed}, the check {code}")
    if code == 0 and caffe is not None:
        verdict = caffe.load(model, weights_path)
        if not verdict.ok:
            return Outcome(code, stderr, f"archc calls the weights a fit, Caffe does not take "
                                         f"them: {verdict.detail}")
    return Outcome(code, stderr, None)
