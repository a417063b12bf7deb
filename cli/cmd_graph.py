"""`archc graph MODEL [--PARAM VALUE ...] [-o OUT.svg|.png|.html|.dot] [--open NAME,...|all]
[--stages side|stacked]`: the net drawn with its .arch structure (see analysis.graph)."""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from archc.analysis.graph import SIDE_BY_SIDE, STAGE_LAYOUTS, NetGraph
from archc.analysis.graph_render import FORMATS, write_drawing
from archc.cli.argparsing import ArgumentParser
from archc.cli.arguments import split_overrides
from archc.cli.main import reports_errors
from archc.errors import UsageError
from archc.ir import infer_shapes
from archc.model import load_model

EVERY_BLOCK = "all"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="archc graph", allow_abbrev=False,
        usage="archc graph MODEL.prototxt|MODEL.arch [--PARAM VALUE ...] [-o OUT]\n"
              "                   [--open NAME,...|all] [--stages {side,stacked}]",
        description="Draw the net: each block call of an .arch MODEL is a box with its output "
                    "shape, parameters and MACs, or opened, a frame around its layers; loop "
                    "iterations (stages) are frames; edges carry blob shapes. A prototxt's layers "
                    "are grouped by name prefix. The .html page opens and closes blocks on a "
                    "click. Parameters of an .arch MODEL follow it as --PARAM VALUE.")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="the file to write, its format chosen by the extension: .svg, .png "
                             "(both need Graphviz), .html (one page, clickable; Graphviz), .dot "
                             "(the Graphviz source); default: the DOT source on stdout")
    parser.add_argument("--open", metavar="NAME,...",
                        help="blocks to draw open in an .svg, .png or .dot, by the names the "
                             "drawing and `archc summary` give them (resx4, stem()), or 'all' "
                             "(default: every block closed)")
    parser.add_argument("--stages", choices=STAGE_LAYOUTS, default=SIDE_BY_SIDE,
                        help="top-level loop iterations beside each other or one under another "
                             "(default: side)")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    args, rest = build_parser().parse_known_args(argv)
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in FORMATS:
        raise UsageError(f"-o {output}: the extension chooses the format; use one of "
                         f"{', '.join(FORMATS)}")
    if output is not None and output.suffix.lower() == ".html" and args.open:
        raise UsageError("--open applies to .svg, .png and .dot drawings; the .html page opens "
                         "blocks on a click: drop --open")
    model = load_model(args.model, split_overrides(rest))
    graph = NetGraph(infer_shapes(model.net), model.name)
    open_groups = graph.with_ancestors(_named_groups(graph, args.open)) if args.open else set()
    if output is None:
        sys.stdout.write(graph.dot(open_groups, args.stages))
        return 0
    write_drawing(graph, output, open_groups, args.stages)
    print(f"wrote {output}", file=sys.stderr)
    return 0


def _named_groups(graph: NetGraph, names: str) -> list[int]:
    if names == EVERY_BLOCK:
        return graph.closable()
    found = []
    for name in (part.strip() for part in names.split(",") if part.strip()):
        numbers = graph.named(name)
        if not numbers:
            known = sorted({graph.facts[number].group.name for number in graph.closable()})
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else \
                "`archc summary` lists the blocks, or open them all with --open all"
            raise UsageError(f"--open {name}: the net has no block of that name; {hint}")
        found += numbers
    return found
