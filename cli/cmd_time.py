"""`archc time MODEL [--PARAM VALUE ...] [--batch N] [--iterations N] [--warmup N]
[--input-size H[xW]] [--gpu N]`: Caffe's `caffe time` report, from pycaffe (see runtime.timing)."""
from __future__ import annotations

import argparse

from archc.cli.arguments import ArgumentParser, integer_at_least, split_overrides
from archc.cli.main import reports_errors
from archc.model import load_model
from archc.runtime.loader import load_net_text
from archc.runtime.timing import time_net


def _input_size(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition("x")
    try:
        size = (int(height), int(width or height))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H or HxW, got '{text}'") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"sizes are positive, got '{text}'")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="archc time", allow_abbrev=False,
        usage="archc time MODEL.prototxt|MODEL.arch [--PARAM VALUE ...] [--batch N] "
              "[--iterations N] [--warmup N] [--input-size H[xW]] [--gpu N]",
        description="Average forward, backward and forward-backward time per iteration and per "
                    "layer, like `caffe time`, warm-up excluded. Parameters of an .arch MODEL "
                    "follow it as --PARAM VALUE (for an .arch family, set the input size with its "
                    "own --size).")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--batch", type=integer_at_least(1),
                        help="images per forward pass (default: the net's)")
    parser.add_argument("--iterations", type=integer_at_least(1), default=50, help="timed iterations (50)")
    parser.add_argument("--warmup", type=integer_at_least(0), default=1, help="untimed iterations first (1)")
    parser.add_argument("--input-size", type=_input_size, metavar="H[xW]",
                        help="input height and width (default: the net's)")
    parser.add_argument("--gpu", type=integer_at_least(0), metavar="N", help="run on GPU N (needs a CUDA Caffe)")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    args, rest = build_parser().parse_known_args(argv)
    model = load_model(args.model, split_overrides(rest))
    net = load_net_text(model.text, model.source, gpu=args.gpu, batch=args.batch,
                        input_size=args.input_size, force_backward=True).net
    report = time_net(net, args.iterations, args.warmup)
    device = "CPU" if args.gpu is None else f"GPU {args.gpu}"
    print(report.format(f"archc time {model.name} on {device}"))
    return 0
