"""`archc upgrade OLD -o NEW`: a net in Caffe's V0 or V1 format rewritten in the current one, as
Caffe's upgrade_net_proto_text (prototxt) and upgrade_net_proto_binary (.caffemodel) tools do.

All of Caffe's upgrade steps are taken (see codegen.upgrade), the input fields becoming an Input
layer included. A .caffemodel stays binary and a prototxt text; NEW is written whole or not at all,
and never over OLD. Where Caffe would abort, or report the upgrade as failed and drop a setting,
nothing is written and the message names the construct.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.message import Message

from archc.cli.argparsing import ArgumentParser
from archc.cli.main import reports_errors
from archc.codegen import upgrade
from archc.codegen.parse import read_prototxt
from archc.errors import ArchError, UsageError
from archc.files import write_atomically
from archc.model import load_model
from archc.runtime import weights

BINARY_SUFFIX = ".caffemodel"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="archc upgrade", allow_abbrev=False,
        usage="archc upgrade OLD.prototxt -o NEW.prototxt | "
              "archc upgrade OLD.caffemodel -o NEW.caffemodel",
        description="Rewrite a net (prototxt) or weights file (.caffemodel) in Caffe's V0 or V1 "
                    "format in the current format, exactly as Caffe upgrades it when loading it.")
    parser.add_argument("source", metavar="OLD", help="the old file; a .caffemodel is read as binary")
    parser.add_argument("-o", "--output", metavar="NEW", required=True,
                        help="the file to write, in the same encoding (never OLD itself)")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    binary = _check_paths(args.source, args.output)
    data, net, steps = (_upgrade_caffemodel if binary else _upgrade_prototxt)(args.source)
    try:
        write_atomically(Path(args.output), data)
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror or error}") from None
    layers = f"{len(net.layer)} layers"
    if steps:
        print(f"upgraded {args.source} ({', '.join(steps)}) -> {args.output}: {layers}")
    else:
        print(f"{args.source} is already in Caffe's current format: wrote it as it is to "
              f"{args.output}: {layers}")
    return 0


def _check_paths(source: str, output: str) -> bool:
    """Whether the files are binary; refuses an output that is the source or of the other kind."""
    binary = source.endswith(BINARY_SUFFIX)
    if output.endswith(BINARY_SUFFIX) != binary:
        if binary:
            raise UsageError(f"{source} is a binary {BINARY_SUFFIX}, and so is its upgrade: name "
                             f"the output *{BINARY_SUFFIX}")
        raise UsageError(f"{source} is a text prototxt, and so is its upgrade: name the output "
                         f"other than *{BINARY_SUFFIX}")
    if Path(output).exists() and Path(source).exists() and Path(output).samefile(source):
        raise UsageError(f"-o {output} is the file being upgraded: write the upgrade elsewhere")
    return binary


def _upgrade_prototxt(path: str) -> tuple[bytes, Message, tuple[str, ...]]:
    model = load_model(path)
    proto = read_prototxt(model.text, model.source)   # the layer format upgraded, errors at their layer
    try:
        upgraded = upgrade.upgrade_net(proto.message)
    except upgrade.UpgradeError as error:
        raise ArchError(error.message, proto.input_span) from None
    net_text = text_format.MessageToString(upgraded.net)
    return net_text.encode("utf-8"), upgraded.net, proto.upgrades + upgraded.steps


def _upgrade_caffemodel(path: str) -> tuple[bytes, Message, tuple[str, ...]]:
    upgraded = weights.upgraded_caffemodel(weights.read_caffemodel_bytes(path), path)
    return upgraded.net.SerializeToString(), upgraded.net, upgraded.steps
