"""`archc diff A B`: semantic difference of two Caffe prototxts (see analysis.diff for the rules).

Exit status: 0 when the networks are equal, 1 when they differ, 2 when a file cannot be read.
"""
from __future__ import annotations

import sys

from archc.analysis.diff import diff_nets, normalise
from archc.cli.arguments import ArgumentParser
from archc.cli.main import reports_errors
from archc.codegen.parse import read_prototxt
from archc.errors import UsageError
from archc.model import is_arch_file, load_model


@reports_errors
def main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="archc diff",
        description="Compare two Caffe prototxts layer by layer (matched by name), after normalising "
                    "Caffe's defaults and equivalent spellings. Fillers and lr_mult/decay_mult are ignored.")
    parser.add_argument("a", metavar="A", help="first prototxt")
    parser.add_argument("b", metavar="B", help="second prototxt")
    parser.add_argument("--types", metavar="FORKS.arch", action="append", default=[],
                        help="an .arch file declaring fork layer types the files use (repeatable; "
                             "the model library's lib/forks.arch is always known)")
    args = parser.parse_args(argv)
    nets = []
    for path in (args.a, args.b):
        if is_arch_file(path):
            raise UsageError(f"{path}: diff compares prototxts; compile the model first "
                             f"(archc {path} [--PARAM VALUE ...] -o FILE.prototxt)")
        model = load_model(path, type_files=tuple(args.types))
        nets.append(normalise(read_prototxt(model.text, model.source, model.types)))
    differences = diff_nets(*nets)
    if not differences:
        print(f"no differences: {len(nets[0].layers)} layers and {len(nets[0].inputs)} input(s) "
              f"compared")
        return 0
    try:
        for difference in differences:
            print(difference)
        print(f"{len(differences)} difference(s) between {args.a} (A) and {args.b} (B)")
    except BrokenPipeError:  # `archc diff A B | head`: the files still differ
        sys.stderr.close()
    return 1
