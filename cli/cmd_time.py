"""`archc time MODEL [--PARAM VALUE ...] [--batch N] [--iterations N] [--warmup N]
[--input-size H[xW]] [--gpu N] [--backend caffe|onnxruntime|torch] [--keep-batchnorm] [--summary]
[--json]`: Caffe's `caffe time` report, from pycaffe (see runtime.timing), with totals per batch
and per image; or forward passes of the net exported to ONNX Runtime or torch.

By default Caffe times the net as `archc eval` runs it: each Convolution -> BatchNorm -> Scale
chain folded into one convolution (runtime.fold_batchnorm), so the images/s of both agree."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np

from archc.cli.argparsing import ArgumentParser, integer_at_least
from archc.cli.arguments import split_overrides
from archc.cli.main import reports_errors
from archc.errors import ArchError, UsageError
from archc.export.common import caffe_outputs
from archc.ir import infer_shapes
from archc.model import Model, load_model
from archc.runtime import exporting, fold_batchnorm
from archc.runtime.loader import load_net_text, resized_inputs
from archc.runtime.timing import TimingReport, time_forward, time_net

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
        usage="archc time MODEL.prototxt|MODEL.arch [--PARAM VALUE ...]\n"
              "                  [--batch N] [--iterations N] [--warmup N] [--input-size H[xW]] "
              "[--gpu N]\n"
              "                  [--backend caffe|onnxruntime|torch] [--keep-batchnorm] "
              "[--summary] [--json]",
        description="Average forward, backward and forward-backward time per iteration and per "
                    "layer, like `caffe time`, warm-up excluded, then the forward pass per batch, "
                    "per image and in images/s. BatchNorm is folded into the convolutions before "
                    "it, as `archc eval` runs it, unless --keep-batchnorm. Parameters of an .arch "
                    "MODEL follow it as --PARAM VALUE (for an .arch family, set the input size "
                    "with its own --size).")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--batch", type=integer_at_least(1), metavar="N",
                        help="images per forward pass (default: the net's)")
    parser.add_argument("--iterations", type=integer_at_least(1), default=50, metavar="N",
                        help="timed iterations (default: 50)")
    parser.add_argument("--warmup", type=integer_at_least(0), default=1, metavar="N",
                        help="untimed iterations first (default: 1)")
    parser.add_argument("--input-size", type=_input_size, metavar="H[xW]",
                        help="input height and width (default: the net's)")
    parser.add_argument("--gpu", type=integer_at_least(0), metavar="N",
                        help="run on GPU N (needs a CUDA Caffe, or torch with CUDA)")
    parser.add_argument("--backend", choices=TIMED_BACKENDS, default="caffe",
                        help="caffe: forward and backward, layer by layer; onnxruntime, torch: "
                             "forward passes of the exported net, with filler weights "
                             "(default: caffe)")
    parser.add_argument("--keep-batchnorm", action="store_true",
                        help="time BatchNorm and Scale layers as written (default: folded into the "
                             "convolutions before them, as archc eval runs them; caffe only)")
    parser.add_argument("--summary", action="store_true", help="the totals only, no layer table")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (layers, unless --summary, and totals)")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    args, rest = build_parser().parse_known_args(argv)
    model = load_model(args.model, split_overrides(rest))
    device = "CPU" if args.gpu is None else f"GPU {args.gpu}"
    if args.backend != "caffe":
        if args.keep_batchnorm:
            raise UsageError(f"--keep-batchnorm applies to --backend caffe: {args.backend} runs "
                             f"the exported net as it is")
        report, folded = time_exported(model, args), 0
        title = f"archc time {model.name} on {device} ({args.backend})"
    else:
        text, source, folded = timed_net(model, args.keep_batchnorm)
        net = load_net_text(text, source, gpu=args.gpu, batch=args.batch,
                            input_size=args.input_size, force_backward=True).net
        report = time_net(net, args.iterations, args.warmup)
        how = f", {folded} BatchNorm folded as archc eval runs them" if folded else \
            ", BatchNorm as written" if args.keep_batchnorm else ""
        title = f"archc time {model.name} on {device}{how}"
    if args.json:
        document = {"model": model.name, "device": device.lower(), "backend": args.backend,
                    "batchnorm_folded": folded, **report.to_json(with_layers=not args.summary)}
        print(json.dumps(document, indent=1))
    else:
        print(report.format(title, with_layers=not args.summary))
    return 0


def timed_net(model: Model, keep_batchnorm: bool) -> tuple[str, str, int]:
    """The prototxt to time, its name in messages, and how many BatchNorm layers it folds."""
    if keep_batchnorm:
        return model.text, model.source, 0
    try:
        net = model.net
    except ArchError:  # a layer outside the IR: Caffe is asked about the net (archc eval cannot
        return model.text, model.source, 0  # run it, so there is nothing to compare with)
    folds = fold_batchnorm.plan(net)
    if not folds:
        return model.text, model.source, 0
    return (fold_batchnorm.folded_text(net, folds), f"{model.source} (BatchNorm folded)",
            len(folds))


def time_exported(model: Model, args) -> TimingReport:
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
    return time_forward(run, values, args.iterations, args.warmup)
