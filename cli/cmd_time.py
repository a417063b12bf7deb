"""`archc time MODEL [--PARAM VALUE ...] [--batch N] [--iterations N] [--warmup N]
[--input-size H[xW]] [--gpu N] [--backend caffe|onnxruntime|torch]`: Caffe's `caffe time` report,
from pycaffe (see runtime.timing); or forward passes of the net exported to ONNX Runtime or torch."""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from archc.cli.arguments import ArgumentParser, integer_at_least, split_overrides
from archc.cli.main import reports_errors
from archc.errors import UsageError
from archc.export.common import caffe_outputs
from archc.ir import infer_shapes
from archc.model import Model, load_model
from archc.runtime import exporting
from archc.runtime.loader import load_net_text, resized_inputs
from archc.runtime.timing import time_forward, time_net

TIMED_BACKENDS = ("caffe", "onnxruntime", "torch")


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
              "[--iterations N] [--warmup N] [--input-size H[xW]] [--gpu N] "
              "[--backend caffe|onnxruntime|torch]",
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
    parser.add_argument("--gpu", type=integer_at_least(0), metavar="N",
                        help="run on GPU N (needs a CUDA Caffe, or torch with CUDA)")
    parser.add_argument("--backend", choices=TIMED_BACKENDS, default="caffe",
                        help="caffe: forward and backward, layer by layer; onnxruntime, torch: "
                             "forward passes of the exported net, with filler weights")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    args, rest = build_parser().parse_known_args(argv)
    model = load_model(args.model, split_overrides(rest))
    device = "CPU" if args.gpu is None else f"GPU {args.gpu}"
    if args.backend != "caffe":
        return time_exported(model, args, device)
    net = load_net_text(model.text, model.source, gpu=args.gpu, batch=args.batch,
                        input_size=args.input_size, force_backward=True).net
    report = time_net(net, args.iterations, args.warmup)
    print(report.format(f"archc time {model.name} on {device}"))
    return 0


def time_exported(model: Model, args, device: str) -> int:
    """Forward passes of the net exported to the backend, at the asked batch and input size."""
    net = model.net
    inputs = resized_inputs({name: list(shape) for name, shape in net.inputs.items()},
                            args.batch, args.input_size)
    shaped = infer_shapes(replace(net, inputs={name: tuple(shape) for name, shape in inputs.items()}))
    prepared = exporting.Prepared(shaped, exporting.parameters_of(shaped, None))
    outputs = caffe_outputs(net)
    if args.backend == "onnxruntime":
        if args.gpu is not None:
            raise UsageError("--gpu needs --backend caffe or torch (ONNX Runtime runs on the CPU)")
        run = exporting.OnnxRuntimeRun(prepared, outputs)
    else:
        run = exporting.TorchRun(prepared, outputs, args.gpu)
    rng = np.random.default_rng(0)
    values = {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in inputs.items()}
    report = time_forward(run, values, args.iterations, args.warmup)
    print(report.format(f"archc time {model.name} on {device} ({args.backend})"))
    return 0
