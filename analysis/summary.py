"""Complexity summary of a network, per image: shapes, parameters, MACs and activation memory.

In the spirit of Netscope's analyzer. Per layer: output shape (without the batch axis), parameter
count (the elements of every blob Caffe allocates, BatchNorm statistics included, so it matches
the .caffemodel), multiply-accumulates (the IR's count, see `ir.ops`), and activation memory (the
elements of the layer's output blob; an in-place layer reuses its input blob, and Reshape,
Flatten and Split view theirs, so those add none).
Network inputs are rows too, holding their own blob.

Blocks group layers by name, so totals line up with the paper's stages and blocks:
- an in-place layer belongs to the block of the layer that wrote its blob (`bn2a_branch1`,
  `scale2a_branch1` and `res2a_branch1_relu` go with `res2a_branch1`);
- otherwise a name is split at `_` and the block is its leading tokens, up to and including the
  first token that is a letter-led word with a digit (`res2a`, `resx3`, `a1`, `stem2`,
  `dense12`), stopping before a token that starts with a digit (`3x3`, `1x7`, `2`) and passing
  over version tags (`v2`): `inception_resnet_v2_a1_1x1` -> `inception_resnet_v2_a1`,
  `reduction_a_3x3_2` -> `reduction_a`, `conv1_3x3_s2` -> `conv1`;
- a name that none of these rules cuts (`reduction_a_pool`, `pool_ave`) joins the longest block
  so found that prefixes it (`reduction_a`), or else is a block of its own.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from archc.ir import ShapedNet

BYTES_PER_ELEMENT = 4  # Caffe's float32 blobs
_NUMBERED_WORD = re.compile(r"[A-Za-z]+\d\w*")
_VERSION_TAG = re.compile(r"v\d+")


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    block: str
    output: tuple[int, ...]   # per image: the batch axis dropped; the first top's
    params: int
    macs: int
    activations: int          # output elements this layer adds (0 in place or for a view)
    more_outputs: tuple[tuple[int, ...], ...] = ()  # the other tops' shapes (Slice, Split, ...)

    @property
    def activation_bytes(self) -> int:
        return self.activations * BYTES_PER_ELEMENT


@dataclass(frozen=True)
class Total:
    name: str
    layers: int
    params: int
    macs: int
    activations: int

    @property
    def activation_bytes(self) -> int:
        return self.activations * BYTES_PER_ELEMENT


@dataclass(frozen=True)
class Summary:
    rows: list[Row]
    blocks: list[Total]
    total: Total


def block_of_name(name: str) -> str:
    tokens = name.split("_")
    for index, token in enumerate(tokens):
        if token[:1].isdigit():
            return "_".join(tokens[:index]) or name
        if _NUMBERED_WORD.fullmatch(token) and not _VERSION_TAG.fullmatch(token):
            return "_".join(tokens[:index + 1])
    return name


def summarise(shaped: ShapedNet) -> Summary:
    rows: list[Row] = []
    block_of_blob: dict[str, str] = {}
    block_of = _name_blocks([entry.layer.name for entry in shaped.layers])
    for name, shape in shaped.net.inputs.items():
        block_of_blob[name] = name
        rows.append(Row(name, "Input", name, shape[1:], 0, 0, math.prod(shape[1:])))
    for entry in shaped.layers:
        layer = entry.layer
        if layer.in_place:
            block = block_of_blob.get(layer.bottoms[0], block_of[layer.name])
        else:
            block = block_of[layer.name]
        # an in-place top, or a view's tops, allocate no activation memory of their own
        if layer.op.is_view(len(layer.bottoms), len(layer.tops)):
            own = ()
        else:
            own = entry.outputs[1:] if layer.in_place else entry.outputs
        activations = sum(math.prod(shape[1:]) for shape in own)
        for top in layer.tops:
            block_of_blob[top] = block
        rows.append(Row(layer.name, layer.type, block, entry.output[1:], entry.params, entry.macs,
                        activations, tuple(shape[1:] for shape in entry.outputs[1:])))
    blocks = [_total(block, [row for row in rows if row.block == block])
              for block in dict.fromkeys(row.block for row in rows)]
    return Summary(rows, blocks, _total("total", rows))


def _name_blocks(names: list[str]) -> dict[str, str]:
    """Each name's block: `block_of_name`, or for an uncut name the longest cut block prefixing it."""
    cut = {name: block_of_name(name) for name in names}
    known = sorted({block for name, block in cut.items() if block != name}, key=len, reverse=True)
    blocks = {}
    for name, block in cut.items():
        if block == name:
            block = next((prefix for prefix in known if name.startswith(prefix + "_")), name)
        blocks[name] = block
    return blocks


def _total(name: str, rows: list[Row]) -> Total:
    layers = sum(1 for row in rows if row.type != "Input")
    return Total(name, layers, sum(r.params for r in rows), sum(r.macs for r in rows),
                 sum(r.activations for r in rows))


def to_json(summary: Summary, model: str) -> dict:
    def with_bytes(item) -> dict:
        return {**asdict(item), "activation_bytes": item.activation_bytes}
    return {"model": model, "per": "image", "bytes_per_element": BYTES_PER_ELEMENT,
            "layers": [with_bytes(row) for row in summary.rows],
            "blocks": [with_bytes(block) for block in summary.blocks],
            "total": with_bytes(summary.total)}


def human(count: float) -> str:
    """1234567 -> '1.23M': three significant digits for tables."""
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(count) >= threshold:
            return f"{count / threshold:.2f}{suffix}"
    return str(int(count))


def format_table(summary: Summary, model: str) -> str:
    name_width = max(len("layer"), *(len(row.name) for row in summary.rows))
    block_width = max(len("block"), *(len(block.name) for block in summary.blocks))
    lines = [f"{model}: per image, {BYTES_PER_ELEMENT}-byte activations", ""]
    header = (f"{'layer':<{name_width}}  {'type':<12}  {'output':>16}  {'params':>9}  {'MACs':>9}  "
              f"{'activations':>11}")
    lines += [header, "-" * len(header)]
    for row in summary.rows:
        shape = ", ".join("x".join(str(d) for d in output) for output in (row.output, *row.more_outputs))
        memory = human(row.activations) if row.activations else "(in place)" if row.type != "Input" else "0"
        lines.append(f"{row.name:<{name_width}}  {row.type:<12}  {shape:>16}  {human(row.params):>9}  "
                     f"{human(row.macs):>9}  {memory:>11}")
    block_header = (f"{'block':<{block_width}}  {'layers':>6}  {'params':>9}  {'MACs':>9}  "
                    f"{'activations':>11}  {'MACs %':>6}")
    lines += ["", block_header, "-" * len(block_header)]
    total_macs = summary.total.macs or 1
    for block in summary.blocks:
        lines.append(f"{block.name:<{block_width}}  {block.layers:>6}  {human(block.params):>9}  "
                     f"{human(block.macs):>9}  {human(block.activations):>11}  "
                     f"{100 * block.macs / total_macs:>6.1f}")
    total = summary.total
    lines += ["", f"total: {total.layers} layers, {total.params:,} parameters ({human(total.params)}), "
                  f"{total.macs:,} MACs ({human(total.macs)}), {total.activations:,} activations "
                  f"({human(total.activation_bytes)}B)"]
    return "\n".join(lines)
