"""`archc diff A B`: semantic difference of two nets (see analysis.diff for the rules), each a
prototxt or an .arch file with its `--PARAM VALUE`s.

Exit status: 0 when the networks are equal, 1 when they differ, 2 when a file cannot be read.
"""
from __future__ import annotations

import sys

from archc.analysis.diff import diff_nets, normalise
from archc.cli.arguments import models_and_overrides, split_overrides, take_option
from archc.cli.main import reports_errors
from archc.codegen.parse import read_prototxt
from archc.errors import UsageError
from archc.model import load_model

USAGE = """usage: archc diff A B [--types FORKS.arch ...]

Compare two nets layer by layer (matched by name), after normalising Caffe's defaults and
equivalent spellings; fillers and lr_mult/decay_mult are ignored. A and B are each a prototxt, or
an .arch file followed by its --PARAM VALUEs, e.g.
  archc diff archs/vgg.arch --depth 16 --bn true deploy_vgg16bn-pytorch.prototxt
  --types   an .arch file declaring fork layer types the files use (repeatable; the model
            library's lib/forks.arch is always known)
"""


@reports_errors
def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    type_files, rest = take_option(argv, "--types")
    models = models_and_overrides(rest)
    if len(models) != 2:
        given = ", ".join(path for path, _ in models) or "none"
        raise UsageError(f"diff compares two nets ({len(models)} given: {given}): archc diff A "
                         f"B, each a prototxt or an .arch file followed by its --PARAM VALUEs")
    nets = []
    for path, overrides in models:
        model = load_model(path, split_overrides(overrides), type_files=tuple(type_files))
        nets.append(normalise(read_prototxt(model.text, model.source, model.types)))
    differences = diff_nets(*nets)
    if not differences:
        print(f"no differences: {len(nets[0].layers)} layers and {len(nets[0].inputs)} input(s) "
              f"compared")
        return 0
    try:
        for difference in differences:
            print(difference)
        print(f"{len(differences)} difference(s) between {models[0][0]} (A) and {models[1][0]} "
              f"(B)")
    except BrokenPipeError:  # `archc diff A B | head`: the files still differ
        sys.stderr.close()
    return 1
