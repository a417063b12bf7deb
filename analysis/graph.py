"""A net as a Graphviz DOT graph, drawn with its structure (`analysis.structure`).

Each group (a block call, or layers grouped by name in a prototxt) is drawn either open, as a
cluster around its layers and sub-groups, or closed, as one box with its output shape, parameters
and MACs. Loop iterations are always open: they are the stages, stacked or side by side. Edges
carry the shape (C x H x W) of the blob they pass; merges (sum, product, maximum, concat) are
drawn as round / trapezoid nodes so branches can be seen joining. The layout is Graphviz's
(`analysis.graph_render` runs `dot`); nothing here places anything.

Groups are numbered in the tree's pre-order from 1; `NetGraph.dot` draws a chosen set of them
open, and with `links` every closed box links to the view `#g<N>` where it is open, and every
open cluster to the view where it is closed again (the HTML page switches views on those links).
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from archc.analysis.structure import NAME_PREFIX, Group, group_net
from archc.analysis.summary import human
from archc.ir import BLOCK_CALL, LOOP_ITERATION, ShapedNet
from archc.ir.ops import Concat, Eltwise

STACKED, SIDE_BY_SIDE = "stacked", "side"
STAGE_LAYOUTS = (STACKED, SIDE_BY_SIDE)
DEFAULT_VIEW = "net"

_MERGE_SYMBOLS = {"SUM": "+", "PROD": "&#215;", "MAX": "max"}
_FILL = {"Convolution": "#dbe9f6", "InnerProduct": "#d5efd5", "Pooling": "#fde5c8",
         "Concat": "#fff2b3", "Eltwise": "#fff2b3"}
_FILL_OTHER = "#f2f2f2"
_CLUSTER_STYLE = {BLOCK_CALL: ("#5b7fa6", "#f7faff"), NAME_PREFIX: ("#5b7fa6", "#f7faff"),
                  LOOP_ITERATION: ("#9a9a9a", "#ffffff")}
_CLOSED_FILL = "#c9dcf0"


def shape_text(shape: tuple[int, ...]) -> str:
    """A blob's shape per image: `256x56x56`."""
    return "x".join(str(dim) for dim in shape[1:]) or "1"


@dataclass(frozen=True)
class GroupFacts:
    number: int
    group: Group
    parent: int            # the enclosing group's number; 0 is the net
    layers: tuple[int, ...]
    output: str            # the shape its last layer writes
    params: int
    macs: int

    @property
    def closable(self) -> bool:
        """Whether it can be drawn as one box: a block call, or a name group of several layers."""
        kind = self.group.kind
        return kind == BLOCK_CALL or (kind == NAME_PREFIX and len(self.layers) > 1)


class NetGraph:
    """A shaped net and its groups, ready to be drawn with any of them open."""

    def __init__(self, shaped: ShapedNet, title: str):
        self.shaped, self.title = shaped, title
        self.root = group_net(shaped.net)
        self.facts: dict[int, GroupFacts] = {}
        self._numbers: dict[int, int] = {}  # id(group) -> its number
        self._collect(self.root, 0)

    def _collect(self, group: Group, parent: int) -> None:
        for member in group.groups:
            number = len(self.facts) + 1
            layers = tuple(member.layer_indices())
            entries = [self.shaped.layers[index] for index in layers]
            self.facts[number] = GroupFacts(number, member, parent, layers,
                                            shape_text(entries[-1].output),
                                            sum(entry.params for entry in entries),
                                            sum(entry.macs for entry in entries))
            self._numbers[id(member)] = number
            self._collect(member, number)

    def facts_of(self, group: Group) -> GroupFacts:
        return self.facts[self._numbers[id(group)]]

    def closable(self) -> list[int]:
        return [number for number, facts in self.facts.items() if facts.closable]

    def named(self, name: str) -> list[int]:
        """The closable groups called `name` (`resx4`, `stem()`)."""
        return [number for number in self.closable() if self.facts[number].group.name == name]

    def with_ancestors(self, numbers) -> set[int]:
        found = set()
        for number in numbers:
            while number:
                found.add(number)
                number = self.facts[number].parent
        return found

    def view_of(self, number: int) -> str:
        return f"g{number}" if number else DEFAULT_VIEW

    def closing_view(self, number: int) -> str:
        """The view that closes group `number`: its nearest closable ancestor's, or the default."""
        parent = self.facts[number].parent
        while parent and not self.facts[parent].closable:
            parent = self.facts[parent].parent
        return self.view_of(parent)

    # ----- drawing -------------------------------------------------------------------------

    def dot(self, open_groups: set[int], stages: str = SIDE_BY_SIDE, links: bool = False,
            prefix: str = "", titled: bool = True) -> str:
        """The DOT graph with the groups in `open_groups` (and every loop iteration) drawn open;
        `titled`: with the model's name above it. `prefix` keeps element ids apart when several
        drawings share one page."""
        drawing = _Drawing(self, open_groups, links, prefix)
        title = dict(label=self.title, labelloc="t", fontsize=16) if titled else {}
        # newrank: a `rank=same` may line up nodes of different clusters (stages side by side)
        graph = _attributes(id=f"{prefix}graph", **title, newrank="true", rankdir="TB",
                            nodesep=0.25, ranksep=0.35, fontname="Helvetica", tooltip=self.title)
        lines = [f"digraph {_quote(prefix or 'net')} {{", f"  graph [{graph}];",
                 "  node [fontname=\"Helvetica\", fontsize=10, shape=box, style=\"rounded,filled\", "
                 "color=\"#7a7a7a\", penwidth=0.8, margin=\"0.12,0.04\"];",
                 "  edge [fontname=\"Helvetica\", fontsize=8, fontcolor=\"#505050\", "
                 "color=\"#707070\", arrowsize=0.6];"]
        for name, shape in self.shaped.net.inputs.items():
            label = _html_label(f"<b>{html.escape(name)}</b>", shape_text(shape))
            attributes = _attributes(id=f"{prefix}input_{name}", label=label, shape="oval",
                                     fillcolor="#ffffff", tooltip=f"input {name}")
            lines.append(f"  {_quote(drawing.input_node(name))} [{attributes}];")
        lines += drawing.members(self.root, "  ")
        lines += drawing.edges()
        if stages == SIDE_BY_SIDE:
            lines += drawing.stages_side_by_side(self.root)
        lines.append("}")
        return "\n".join(lines) + "\n"


class _Drawing:
    """One DOT drawing: which node stands for each layer, and the statements drawn so far."""

    def __init__(self, graph: NetGraph, open_groups: set[int], links: bool, prefix: str):
        self.graph, self.open, self.links, self.prefix = graph, open_groups, links, prefix
        self.node_of_layer: dict[int, str] = {}
        self.first_node: dict[int, str] = {}  # a loop iteration's first node (to line stages up)

    def input_node(self, name: str) -> str:
        return f"input:{name}"

    def is_open(self, facts: GroupFacts) -> bool:
        return not facts.closable or facts.number in self.open

    def members(self, group: Group, indent: str) -> list[str]:
        lines = []
        for member in group.members:
            if isinstance(member, int):
                lines.append(indent + self.layer_node(member))
                continue
            facts = self.graph.facts_of(member)
            if len(facts.layers) == 1 and member.kind == NAME_PREFIX:
                lines.append(indent + self.layer_node(facts.layers[0]))
            elif self.is_open(facts):
                lines += self.cluster(facts, indent)
            else:
                lines.append(indent + self.closed_node(facts))
        return lines

    def cluster(self, facts: GroupFacts, indent: str) -> list[str]:
        group = facts.group
        border, fill = _CLUSTER_STYLE[group.kind]
        details = [html.escape(group.call)] if group.call else []
        details.append(f"{human(facts.params)} params &#183; {human(facts.macs)} MACs")
        attributes = dict(id=f"{self.prefix}cluster_g{facts.number}",
                          label=_html_label(f"<b>{html.escape(group.name)}</b>", *details),
                          style="rounded,filled" if group.kind != LOOP_ITERATION else "rounded,dashed",
                          color=border, fillcolor=fill, fontname="Helvetica", fontsize=10,
                          labeljust="l", penwidth=1.0, tooltip=group.call or group.name)
        if self.links and facts.closable:
            attributes.update(URL=f"#{self.graph.closing_view(facts.number)}",
                              tooltip=f"close {group.name}")
        lines = [f"{indent}subgraph {_quote(f'cluster_g{facts.number}')} {{",
                 f"{indent}  graph [{_attributes(**attributes)}];"]
        lines += self.members(facts.group, indent + "  ")
        if group.kind == LOOP_ITERATION:
            self.first_node[facts.number] = self.node_of_layer[facts.layers[0]]
        lines.append(f"{indent}}}")
        return lines

    def closed_node(self, facts: GroupFacts) -> str:
        node = f"g{facts.number}"
        for index in facts.layers:
            self.node_of_layer[index] = node
        group = facts.group
        details = [html.escape(group.call)] if group.call else []
        details += [f"&#8594; {facts.output}",
                    f"{human(facts.params)} params &#183; {human(facts.macs)} MACs"]
        attributes = dict(id=f"{self.prefix}{node}", label=_html_label(
            f"<b>{html.escape(group.name)}</b>", *details), fillcolor=_CLOSED_FILL,
            color="#5b7fa6", penwidth=1.2, tooltip=f"{group.name}: {len(facts.layers)} layers")
        if self.links:
            attributes.update(URL=f"#{self.graph.view_of(facts.number)}",
                              tooltip=f"open {group.name} ({len(facts.layers)} layers)")
        return f"{_quote(node)} [{_attributes(**attributes)}];"

    def layer_node(self, index: int) -> str:
        node = f"L{index}"
        self.node_of_layer[index] = node
        entry = self.graph.shaped.layers[index]
        layer, op = entry.layer, entry.layer.op
        fields = ", ".join(f"{key}: {value}" for key, value in op.caffe_fields().items())
        tooltip = f"{layer.name} ({layer.type}{': ' + fields if fields else ''})"
        attributes = dict(id=f"{self.prefix}{node}", tooltip=tooltip,
                          fillcolor=_FILL.get(layer.type, _FILL_OTHER))
        if isinstance(op, Eltwise):
            symbol = _MERGE_SYMBOLS.get(op.operation, op.operation)
            attributes.update(shape="circle", style="filled", fixedsize="false", margin="0.02",
                              label=_html_label(f"<b>{symbol}</b>"))
        elif isinstance(op, Concat):
            attributes.update(shape="invtrapezium", style="filled", label=_html_label("<b>concat</b>"))
        else:
            detail = _detail(op)
            kind = html.escape(layer.type) + (" " + detail if detail else "")
            attributes["label"] = _html_label(f"<b>{html.escape(layer.name)}</b>", kind)
        return f"{_quote(node)} [{_attributes(**attributes)}];"

    def edges(self) -> list[str]:
        """One edge per blob passed between two different nodes, labelled with its shape, except
        into an in-place layer drawn on its own (the shape is the one on the edge before)."""
        inputs = self.graph.shaped.net.inputs
        writer: dict[str, tuple[str, tuple[int, ...]]] = {
            name: (self.input_node(name), shape) for name, shape in inputs.items()}
        seen: set[tuple[str, str, str]] = set()
        lines = []
        for index, entry in enumerate(self.graph.shaped.layers):
            node = self.node_of_layer[index]
            for bottom in entry.layer.bottoms:
                source, shape = writer[bottom]
                if source == node or (source, node, bottom) in seen:
                    continue
                seen.add((source, node, bottom))
                attributes = dict(id=f"{self.prefix}e{len(seen)}",
                                  tooltip=f"{bottom}: {shape_text(shape)}")
                if not (entry.layer.in_place and node == f"L{index}"):
                    attributes["label"] = f" {shape_text(shape)}"
                lines.append(f"  {_quote(source)} -> {_quote(node)} [{_attributes(**attributes)}];")
            for top, shape in zip(entry.layer.tops, entry.outputs):
                writer[top] = (node, shape)
        return lines

    def stages_side_by_side(self, root: Group) -> list[str]:
        """Top-level loop iterations start on one rank, so dot sets them beside each other."""
        firsts = [self.first_node[number] for number in
                  (self.graph.facts_of(member).number for member in root.groups)
                  if number in self.first_node]
        if len(firsts) < 2:
            return []
        return ["  { rank=same; " + " ".join(_quote(node) + ";" for node in firsts) + " }"]


def _detail(op) -> str:
    """Kernel, stride and groups of a convolution or pooling: `3x3 /2 g32`, `global AVE`."""
    if getattr(op, "global_pooling", False):
        return f"global {op.method}"
    kernel_h, kernel_w = getattr(op, "kernel_h", 0), getattr(op, "kernel_w", 0)
    if not kernel_h:
        return ""
    parts = [f"{kernel_h}x{kernel_w}"]
    stride = (getattr(op, "stride_h", 1), getattr(op, "stride_w", 1))
    if stride != (1, 1):
        parts.append(f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}x{stride[1]}")
    if getattr(op, "group", 1) != 1:
        parts.append(f"g{op.group}")
    if hasattr(op, "method"):
        parts.append(op.method)
    elif hasattr(op, "num_output"):
        parts.append(f"&#8594; {op.num_output}")
    return " ".join(parts)


class _Html(str):
    """An HTML-like DOT label, written between < and > rather than quoted."""


def _html_label(title: str, *lines: str) -> _Html:
    """A label of escaped HTML text: a title line and smaller lines under it."""
    rows = "".join(f'<br/><font point-size="8">{line}</font>' for line in lines)
    return _Html(f"<{title}{rows}>")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attributes(**attributes) -> str:
    """DOT attributes: HTML-like labels as they are, every other value quoted."""
    return ", ".join(f"{key}={value if isinstance(value, _Html) else _quote(str(value))}"
                     for key, value in attributes.items())
