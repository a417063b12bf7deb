"""Complexity summary of a network, per image: shapes, parameters, MACs and activation memory.

In the spirit of Netscope's analyzer. Per layer: output shape (without the batch axis), parameter
count (the elements of every blob Caffe allocates, BatchNorm statistics included, so it matches
the .caffemodel), multiply-accumulates (the IR's count, see `ir.ops`), and activation memory (the
elements of the layer's output blob; an in-place layer reuses its input blob, and Reshape,
Flatten and Split view theirs, so those add none).
Network inputs are rows too, holding their own blob.

Blocks are the groups of `analysis.structure`, so totals line up with the .arch file's blocks and
loops, or for a prototxt with the paper's stages and blocks as the layer names spell them: a group
per top-level block call, loop iterations holding the block calls they made (nested in the table),
and name-prefix groups for the layers outside any block.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from archc.analysis.structure import Group, group_net
from archc.ir import LOOP_ITERATION, ShapedNet

BYTES_PER_ELEMENT = 4  # Caffe's float32 blobs


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    block: str                # the innermost block of the table that holds the layer
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
    depth: int = 0   # how deep the block is nested in the table (a loop iteration's blocks: 1)
    call: str = ""   # the block call that made it, where its name is not the call itself

    @property
    def activation_bytes(self) -> int:
        return self.activations * BYTES_PER_ELEMENT


@dataclass(frozen=True)
class Summary:
    rows: list[Row]
    blocks: list[Total]   # in table order, nested blocks after the block holding them
    total: Total


def summarise(shaped: ShapedNet) -> Summary:
    blocks = list(_table_blocks(group_net(shaped.net)))
    block_of_layer: dict[int, str] = {}
    for group, _ in blocks:  # a nested block comes after its parent, so the innermost wins
        for index in group.layer_indices():
            block_of_layer[index] = group.name
    rows = [Row(name, "Input", name, shape[1:], 0, 0, math.prod(shape[1:]))
            for name, shape in shaped.net.inputs.items()]
    layer_rows = []
    for index, entry in enumerate(shaped.layers):
        layer = entry.layer
        # an in-place top, or a view's tops, allocate no activation memory of their own
        if layer.op.is_view(len(layer.bottoms), len(layer.tops)):
            own = ()
        else:
            own = entry.outputs[1:] if layer.in_place else entry.outputs
        activations = sum(math.prod(shape[1:]) for shape in own)
        layer_rows.append(Row(layer.name, layer.type, block_of_layer[index], entry.output[1:],
                              entry.params, entry.macs, activations,
                              tuple(shape[1:] for shape in entry.outputs[1:])))
    totals = [_total(row.name, [row]) for row in rows]
    totals += [_total(group.name, [layer_rows[i] for i in group.layer_indices()], depth, group.call)
               for group, depth in blocks]
    rows += layer_rows
    return Summary(rows, totals, _total("total", rows))


def _table_blocks(group: Group, depth: int = 0) -> Iterator[tuple[Group, int]]:
    """The groups the table shows, each followed by those nested in it: a loop iteration shows
    the block calls it made; a block call is one block, however many it calls itself."""
    for member in group.groups:
        yield member, depth
        if member.kind == LOOP_ITERATION:
            yield from _table_blocks(member, depth + 1)


def _total(name: str, rows: list[Row], depth: int = 0, call: str = "") -> Total:
    layers = sum(1 for row in rows if row.type != "Input")
    return Total(name, layers, sum(r.params for r in rows), sum(r.macs for r in rows),
                 sum(r.activations for r in rows), depth, call)


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
    type_width = max(12, *(len(row.type) for row in summary.rows))
    block_width = max(len("block"), *(2 * block.depth + len(block.name) for block in summary.blocks))
    lines = [f"{model}: per image, {BYTES_PER_ELEMENT}-byte activations", ""]
    header = (f"{'layer':<{name_width}}  {'type':<{type_width}}  {'output':>16}  {'params':>9}  {'MACs':>9}  "
              f"{'activations':>11}")
    lines += [header, "-" * len(header)]
    for row in summary.rows:
        shape = ", ".join("x".join(str(d) for d in output) for output in (row.output, *row.more_outputs))
        memory = human(row.activations) if row.activations else "(in place)" if row.type != "Input" else "0"
        lines.append(f"{row.name:<{name_width}}  {row.type:<{type_width}}  {shape:>16}  {human(row.params):>9}  "
                     f"{human(row.macs):>9}  {memory:>11}")
    calls = any(block.call for block in summary.blocks)
    block_header = (f"{'block':<{block_width}}  {'layers':>6}  {'params':>9}  {'MACs':>9}  "
                    f"{'activations':>11}  {'MACs %':>6}" + ("  call" if calls else ""))
    lines += ["", block_header, "-" * len(block_header)]
    total_macs = summary.total.macs or 1
    for block in summary.blocks:
        name = "  " * block.depth + block.name
        lines.append(f"{name:<{block_width}}  {block.layers:>6}  {human(block.params):>9}  "
                     f"{human(block.macs):>9}  {human(block.activations):>11}  "
                     f"{100 * block.macs / total_macs:>6.1f}  {block.call}".rstrip())
    total = summary.total
    lines += ["", f"total: {total.layers} layers, {total.params:,} parameters ({human(total.params)}), "
                  f"{total.macs:,} MACs ({human(total.macs)}), {total.activations:,} activations "
                  f"({human(total.activation_bytes)}B)"]
    return "\n".join(lines)
