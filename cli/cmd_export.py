"""`archc export MODEL [--PARAM VALUE ...] --to onnx|pytorch -o OUT [options]`: the net with its
weights as an ONNX model or a PyTorch module that compute Caffe's blobs (see archc.export)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from archc.cli.argparsing import ArgumentParser, integer_at_least
from archc.cli.arguments import split_overrides
from archc.cli.main import reports_errors
from archc.errors import ArchError, UsageError
from archc.files import write_atomically
from archc.ir import infer_shapes
from archc.model import Model, load_model
from archc.runtime import exporting

DEFAULT_TOLERANCE = 1e-5


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="archc export", allow_abbrev=False,
        usage="archc export MODEL.prototxt|MODEL.arch [--PARAM VALUE ...] --to onnx|pytorch -o OUT "
              "[--weights W.caffemodel | --no-weights] [--fold-batchnorm] [--check [--image IMG]]",
        description="Write the net with its weights as an ONNX model (-o FILE.onnx) or as PyTorch "
                    "(-o DIR: DIR/model.py, a readable nn.Module `Net`, and DIR/model.safetensors), "
                    "each computing what Caffe computes. Parameters of an .arch MODEL follow it as "
                    "--PARAM VALUE.")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--to", required=True, choices=exporting.TARGETS, help="the target format")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="the .onnx file, or the directory for model.py and its weights")
    parser.add_argument("--weights", help=".caffemodel to export (default: `weights --init`'s "
                                          "fillers, seeded by --seed)")
    parser.add_argument("--no-weights", action="store_true",
                        help="the structure alone: ONNX takes the parameters as graph inputs, and "
                             "no weights file is written for PyTorch")
    parser.add_argument("--seed", type=integer_at_least(0), default=0,
                        help="without --weights: the fillers' random seed (0)")
    parser.add_argument("--fold-batchnorm", action="store_true",
                        help="fold each Convolution -> BatchNorm [-> Scale] chain into one "
                             "convolution (default: layer for layer, as written)")
    parser.add_argument("--check", action="store_true",
                        help="run the export and real Caffe on a random input (and --image) and "
                             "name the first layer whose blob differs (exit 1)")
    parser.add_argument("--image", help="with --check: also feed this image (resized to the input, "
                                        "BGR pixels minus 127.5)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"with --check: the largest difference allowed, relative to each "
                             f"blob's largest value ({DEFAULT_TOLERANCE:g})")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if args.no_weights and (args.weights or args.check):
        raise UsageError("--no-weights exports the structure alone: drop --weights and --check")
    if (args.image or args.tolerance != DEFAULT_TOLERANCE) and not args.check:
        raise UsageError("--image and --tolerance apply to --check")
    model = load_model(args.model, split_overrides(rest))
    shaped = infer_shapes(model.net)
    parameters = None if args.no_weights else exporting.parameters_of(shaped, args.weights, args.seed)
    exported = exporting.prepare(model.net, parameters, fold=args.fold_batchnorm)
    if args.to == "onnx":
        write_onnx(exported, model, Path(args.output))
    else:
        write_pytorch(exported, model, Path(args.output))
    if not args.check:
        return 0
    written = exporting.Prepared(shaped, parameters)
    reports = [check(model, written, exported, args.to, random_inputs(shaped), "random input",
                     args.tolerance)]
    if args.image:
        reports.append(check(model, written, exported, args.to, image_inputs(shaped, args.image),
                             f"image {args.image}", args.tolerance))
    for report in reports:
        print(report.describe())
    return 1 if any(report.first_divergence for report in reports) else 0


def write_onnx(exported: exporting.Prepared, model: Model, path: Path) -> None:
    from archc.export.to_onnx import to_onnx
    onnx_model = to_onnx(exported.shaped, exported.parameters, doc=f"exported by archc from {model.name}")
    _write(path, onnx_model.SerializeToString())
    graph = onnx_model.graph
    values = sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)
    print(f"wrote {path}: {len(graph.node)} nodes, {len(graph.initializer)} initialisers "
          f"({values:,} values); inputs {', '.join(v.name for v in graph.input)}; "
          f"outputs {', '.join(v.name for v in graph.output)}")


def write_pytorch(exported: exporting.Prepared, model: Model, directory: Path) -> None:
    from archc.export import to_pytorch
    program = to_pytorch.program(exported.shaped)
    source = to_pytorch.model_source(program, model.name, exported.shaped.blobs)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {directory}: {error.strerror or error}") from None
    _write(directory / "model.py", source.encode("utf-8"))
    written = [directory / "model.py"]
    if exported.parameters is not None:
        from safetensors.numpy import save
        state = to_pytorch.state_dict(exported.shaped, program, exported.parameters)
        _write(directory / "model.safetensors", save(state, metadata={"format": "pt"}))
        written.append(directory / "model.safetensors")
    print(f"wrote {', '.join(map(str, written))}: class Net, {len(program.modules)} modules; "
          f"forward({', '.join(variable for _, variable in program.inputs)}) -> "
          f"{', '.join(blob for blob, _ in program.outputs)}")


def _write(path: Path, data: bytes) -> None:
    try:
        write_atomically(path, data)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None


def random_inputs(shaped) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal(shape, dtype=np.float32)
            for name, shape in shaped.net.inputs.items()}


def image_inputs(shaped, path: str) -> dict[str, np.ndarray]:
    """The image, resized to each input's H x W, as BGR pixels minus 127.5."""
    import cv2
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ArchError(f"cannot read image {path}")
    inputs = {}
    for name, (batch, channels, height, width) in shaped.net.inputs.items():
        if channels != 3:
            raise UsageError(f"--image feeds colour images, and input '{name}' has {channels} channels")
        pixels = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
        inputs[name] = np.repeat((pixels - 127.5).transpose(2, 0, 1)[None], batch, axis=0)
    return inputs


def check(model: Model, written, exported, target: str, inputs, label: str, tolerance: float):
    from archc.runtime.export_check import check as compare
    return compare(model.text, model.source, written, exported, target, inputs, label, tolerance)
