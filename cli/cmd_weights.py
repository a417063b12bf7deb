"""`archc weights`: look into .caffemodel files and write initial ones, without Caffe.

  archc weights FILE.caffemodel                      layers and blob shapes
  archc weights FILE.caffemodel --check MODEL [--PARAM VALUE ...] [--allow-missing]
                                                     do the weights fit MODEL? (exit 1 if not)
  archc weights --init MODEL [--PARAM VALUE ...] -o OUT.caffemodel [--seed N]
                                                     filler-initialised weights for MODEL

MODEL is a deploy .prototxt or an .arch file followed by its --PARAM VALUE overrides.
"""
from __future__ import annotations

import argparse
import math

from archc.cli.argparsing import ArgumentParser, integer_at_least
from archc.cli.arguments import split_overrides
from archc.cli.main import reports_errors
from archc.errors import UsageError
from archc.ir import infer_shapes
from archc.model import Model, load_model
from archc.runtime import weights


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="archc weights", allow_abbrev=False,
                            usage="archc weights FILE.caffemodel\n"
                                  "       archc weights FILE.caffemodel --check MODEL "
                                  "[--PARAM VALUE ...] [--allow-missing]\n"
                                  "       archc weights --init MODEL [--PARAM VALUE ...] "
                                  "-o OUT.caffemodel [--seed N]",
                            description="List a .caffemodel's layers and blob shapes, check them "
                                        "against MODEL, or write filler-initialised weights for "
                                        "MODEL, without Caffe. MODEL is a deploy .prototxt or an "
                                        ".arch file followed by its --PARAM VALUE overrides.")
    parser.add_argument("--check", metavar="MODEL", help="compare the weights with what MODEL needs")
    parser.add_argument("--allow-missing", action="store_true",
                        help="with --check: layers without weights are not a failure")
    parser.add_argument("--init", metavar="MODEL", help="write filler-initialised weights for MODEL")
    parser.add_argument("-o", "--output", metavar="OUT", help="with --init: the .caffemodel to write")
    parser.add_argument("--seed", type=integer_at_least(0), default=0, metavar="N",
                        help="with --init: random seed (default: 0)")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    # The caffemodel comes first; every argument the parser does not know is a --PARAM VALUE of
    # the model, so the parser has no positional argument that could swallow a VALUE.
    caffemodel = argv[0] if argv and not argv[0].startswith("-") else None
    args, rest = build_parser().parse_known_args(argv[1:] if caffemodel else argv)
    overrides = split_overrides(rest)
    if args.init:
        if caffemodel or args.check or not args.output:
            raise UsageError("--init MODEL takes -o OUT.caffemodel and no other file")
        return _init(load_model(args.init, overrides), args.output, args.seed)
    if not caffemodel:
        raise UsageError("give a FILE.caffemodel to list or check, or --init MODEL -o OUT")
    if args.check:
        return _check(caffemodel, load_model(args.check, overrides), args.allow_missing)
    if overrides:
        raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    print(format_listing(caffemodel, weights.read_caffemodel(caffemodel)))
    return 0


def _check(caffemodel: str, model: Model, allow_missing: bool) -> int:
    expected = weights.expected_from_ir(infer_shapes(model.net))
    report = weights.compare(expected, weights.read_caffemodel(caffemodel))
    print(report.describe())
    if report.acceptable(allow_missing):
        print(f"ok: {caffemodel} fits {model.name}")
        return 0
    print(f"refused: {caffemodel} does not fit {model.name}"
          + ("" if report.mismatched or allow_missing else " (--allow-missing accepts missing layers)"))
    return 1


def _init(model: Model, output: str, seed: int) -> int:
    shaped = infer_shapes(model.net)
    layers = weights.initial_weights(shaped, seed)
    weights.write_caffemodel(output, layers, shaped.net.name or "")
    total = sum(blob.size for _, _, blobs in layers for blob in blobs)
    print(f"wrote {output}: {len(layers)} layers with weights, {total:,} parameters (seed {seed})")
    return 0


def format_listing(path: str, layers: list[weights.StoredLayer]) -> str:
    with_blobs = [layer for layer in layers if layer.blobs]
    name_width = max([len("layer")] + [len(layer.name) for layer in with_blobs])
    type_width = max([len("type")] + [len(layer.type) for layer in with_blobs])
    total = sum(math.prod(blob.shape) for layer in with_blobs for blob in layer.blobs)
    lines = [f"{path}: {len(layers)} layers, {len(with_blobs)} with weights, {total:,} values",
             f"{'layer':<{name_width}}  {'type':<{type_width}}  blobs"]
    for layer in with_blobs:
        blobs = ", ".join(str(blob) + (" (legacy 4-D)" if blob.legacy else "") for blob in layer.blobs)
        lines.append(f"{layer.name:<{name_width}}  {layer.type:<{type_width}}  {blobs}")
    return "\n".join(lines)
