"""`archc summary MODEL [--json] [--PARAM VALUE ...]`: per-layer and per-block complexity, per image.

MODEL is a deploy .prototxt or an .arch file (with its `--PARAM VALUE` overrides).
See analysis.summary for what each column counts, analysis.structure for how layers group into
blocks.
"""
from __future__ import annotations

import json
import sys

from archc.analysis.summary import format_table, summarise, to_json
from archc.cli.arguments import split_overrides, take_option
from archc.cli.main import reports_errors
from archc.ir import infer_shapes
from archc.model import load_model

USAGE = """usage: archc summary MODEL.prototxt [--json] [--types FORKS.arch ...]
       archc summary MODEL.arch [--PARAM VALUE ...] [--json]

Per layer: output shape, parameters (every blob Caffe allocates), multiply-accumulates and
activation memory (output elements; in-place layers add none), all per image; then totals per
block and for the net. Blocks are an .arch file's top-level block calls, with the block calls of
each loop iteration nested under it; layers outside any block (all of a prototxt's) are grouped by
name prefix, in-place layers with their producer.
  --json    print the same figures as JSON
  --types   an .arch file declaring fork layer types the prototxt uses (repeatable; the model
            library's lib/forks.arch is always known)
"""


@reports_errors
def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    type_files, rest = take_option([arg for arg in argv[1:] if arg != "--json"], "--types")
    as_json = "--json" in argv[1:]
    model = load_model(argv[0], split_overrides(rest), type_files=tuple(type_files))
    summary = summarise(infer_shapes(model.net))
    if as_json:
        print(json.dumps(to_json(summary, model.path), indent=1))
    else:
        print(format_table(summary, model.name))
    return 0
