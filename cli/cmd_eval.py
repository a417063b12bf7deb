"""`archc eval MODEL [--PARAM VALUE ...] --weights W --val LIST [options]`: the seed's ImageNet
evaluation protocol (see runtime/eval), batched, parallel, resumable, on Caffe or OpenCV."""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from pathlib import Path

from archc.cli.arguments import ArgumentParser, integer_at_least, split_overrides
from archc.cli.main import reports_errors
from archc.errors import UsageError
from archc.ir import Net, infer_shapes
from archc.model import Model, load_model
from archc.runtime import fold_batchnorm, weights
from archc.runtime.backends import BACKENDS, BackendSpec, Forwarder
from archc.runtime.eval import model as netinfo
from archc.runtime.eval.crops import CROP_COUNTS, Preprocess, scales_for
from archc.runtime.eval.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageLimits
from archc.runtime.eval.metrics import accuracy_key, results_document
from archc.runtime.eval.presets import PRESETS, Preset, preset_for_model
from archc.runtime.eval.progress import Progress
from archc.runtime.eval.results import Lock, open_journal, write_final
from archc.runtime.eval.run import Job, run
from archc.runtime.eval.settings import EvalSettings
from archc.runtime.eval.sweep import plot_accuracy, plot_path, results_path_for_size
from archc.runtime.eval.synsets import parse_remap, remap_table, val_list_order
from archc.runtime.eval.vallist import label_entries, read_val_list
from archc.runtime.processes import termination_interrupts

SHOWN_SKIPS = 10
DEFAULT_TOPK = (1, 5)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got '{text}'")
    return values


def _bgr(text: str) -> tuple[float, float, float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected B,G,R numbers, got '{text}'") from None
    if not all(math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got '{text}'")
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 values B,G,R (or one for all), got '{text}'")
    return tuple(values)


def _std(text: str) -> tuple[float, float, float]:
    values = _bgr(text)
    if not all(math.isfinite(value) and value != 0 for value in values):
        raise argparse.ArgumentTypeError(f"a std divides the pixels: expected non-zero numbers, "
                                         f"got '{text}'")
    return values


def _limit(text: str) -> int | None:
    return None if text == "none" else integer_at_least(1)(text)


def _triple(values: tuple[float, float, float]) -> str:
    return ",".join(f"{value:.10g}" for value in values)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="archc eval", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="presets (mean/std in BGR; crop size from base size):\n" + "".join(
            f"  {name:<13} mean {_triple(p.mean)}  std {_triple(p.std)}  "
            f"{', '.join(f'{c} from {b}' for c, b in p.bases.items())}"
            + (f"  labels {p.synset}" if p.synset else "") + "\n"
            for name, p in PRESETS.items())
        + "\nexample: archc eval archs/resnext.arch --depth 101 --weights resnext101.caffemodel "
          "--val ILSVRC2012_val.txt --root ~/Database/ILSVRC2012 --crops 12",
        usage="archc eval MODEL.prototxt|MODEL.arch [--PARAM VALUE ...] --weights W --val LIST "
              "[options]",
        description="Top-k accuracy of a model on a labelled image list, with the seed's\n"
                    "preprocessing and 1/12/144-crop protocols. Parameters of an .arch MODEL\n"
                    "follow it as --PARAM VALUE. The results file is written as the run goes:\n"
                    "rerun the same command after an interruption to resume.")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--weights", required=True, help=".caffemodel with the trained weights")
    parser.add_argument("--val", required=True, help="val list: 'relative/path label' per line")
    parser.add_argument("--root", default=".", help="directory the val list's paths are under")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="preprocessing of a model family (default: the family the model's "
                             "file name names, if any; else no preset, and --mean and --std are "
                             "needed)")
    parser.add_argument("--mean", type=_bgr, help="per-channel mean, B,G,R (default: the preset's)")
    parser.add_argument("--std", type=_std, help="per-channel std, B,G,R (default: the preset's)")
    parser.add_argument("--base-size", type=integer_at_least(1),
                        help="shorter side is resized to this first (default: the preset's base "
                             "for the crop size, as listed below, else the crop size itself)")
    parser.add_argument("--crop-size", type=integer_at_least(1),
                        help="side of the square crops (default: the model's input size, else the "
                             "preset's)")
    parser.add_argument("--crops", type=int, choices=CROP_COUNTS, default=1,
                        help="1: centre crop; 12: corners, centre and whole of the image squashed "
                             "to base x base, and mirrors; 144: the 12 of three squares at each of "
                             "four scales (default 1)")
    parser.add_argument("--batch", type=integer_at_least(1), default=8,
                        help="crops per forward pass (default 8)")
    parser.add_argument("--topk", type=_int_list,
                        help="accuracies to report (default 1,5, those of them up to the model's "
                             "number of classes)")
    parser.add_argument("--blob", default="prob", help="output blob holding the class scores "
                                                       "(default prob)")
    parser.add_argument("--results", help="results JSON (default: MODEL-stem.eval.json); an "
                                          "interrupted run resumes from it")
    parser.add_argument("--backend", choices=BACKENDS, default="caffe")
    parser.add_argument("--gpu", type=int, metavar="N", help="run Caffe on GPU N")
    parser.add_argument("--workers", type=integer_at_least(0),
                        default=max(1, min(4, (os.cpu_count() or 2) - 1)),
                        help="image-loading processes (0: load in this process)")
    parser.add_argument("--nets", type=integer_at_least(1),
                        help="copies of the net forwarding in parallel processes (default: one per "
                             "core, up to 4, for Caffe on the CPU; else 1)")
    parser.add_argument("--synset", help="class-order remap by WNID: VAL:MODEL (2012, 2015 or a "
                                         "synset file), MODEL (val in 2012 order), or none")
    parser.add_argument("--sizes", type=_int_list,
                        help="evaluate at each crop size and plot accuracy against it")
    parser.add_argument("--max-pixels", type=_limit, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"skip images whose header declares more pixels (default "
                             f"{DEFAULT_MAX_PIXELS:,}: decoding takes 3 bytes a pixel; none: no "
                             f"limit)")
    parser.add_argument("--max-image-bytes", type=_limit, default=DEFAULT_MAX_BYTES, metavar="N",
                        help=f"skip image files larger than this (default {DEFAULT_MAX_BYTES:,}; "
                             f"none: no limit)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="load even if some layers have no weights")
    parser.add_argument("--keep-batchnorm", action="store_true",
                        help="with --backend caffe: run BatchNorm and Scale layers as written "
                             "(default: folded into the convolutions before them, the same scores "
                             "up to float rounding and about 1.4x faster on a CPU)")
    return parser


@reports_errors
def main(argv: list[str]) -> int:
    try:
        with termination_interrupts():
            return evaluate(argv)
    except KeyboardInterrupt:
        print("\narchc: interrupted; finished images are kept: rerun the same command to resume",
              file=sys.stderr)
        raise


def evaluate(argv: list[str]) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if args.keep_batchnorm and args.backend != "caffe":
        raise UsageError(f"--keep-batchnorm applies to --backend caffe; the {args.backend} backend "
                         f"runs BatchNorm its own way: drop --keep-batchnorm")
    model = load_model(args.model, split_overrides(extra))
    preset_name = choose_preset(args)
    preset = PRESETS[preset_name] if preset_name else None
    sizes = args.sizes or [crop_size(args, model, preset)]
    if args.base_size is not None and args.base_size < max(sizes):
        raise UsageError(f"--base-size {args.base_size} is smaller than the crop size {max(sizes)}")
    if args.gpu is not None and args.gpu < 0:
        raise UsageError(f"--gpu {args.gpu}: a device number is 0 or more")
    if not Path(args.root).is_dir():
        raise UsageError(f"--root {args.root} is not a directory")
    nets = args.nets or default_nets(args.backend, args.gpu)
    if nets > 1 and args.gpu is not None:
        raise UsageError("--nets applies to CPU runs; on a GPU one net is fed in large batches")

    num_classes = None
    for size in sizes:  # every size is checked before any work starts
        num_classes = netinfo.classes(netinfo.at_input_size(model.net, size), args.blob)
    topk = tuple(args.topk or [k for k in DEFAULT_TOPK if k <= num_classes])
    if max(topk) > num_classes:
        raise UsageError(f"--topk {max(topk)} exceeds the model's {num_classes} classes")
    lines = read_val_list(args.val)
    remap = parse_remap(args.synset) if args.synset is not None else preset_remap(preset, lines, args.val)
    table = remap_table(*remap) if remap else None
    entries = label_entries(lines, num_classes, table, args.val)

    fold = args.backend == "caffe" and not args.keep_batchnorm
    # everything but the crop size and what follows from it
    settings_at = functools.partial(
        EvalSettings,
        model=netinfo.absolute(model.path), model_sha256=netinfo.sha256_of_text(model.text),
        weights=netinfo.absolute(args.weights), weights_sha256=netinfo.sha256_of_file(args.weights),
        val=netinfo.absolute(args.val), val_sha256=netinfo.sha256_of_file(args.val),
        root=netinfo.absolute(args.root), preset=preset_name,
        mean=args.mean or preset.mean, std=args.std or preset.std, crops=args.crops,
        batch=args.batch, topk=topk, blob=args.blob,
        backend=args.backend, device="cpu" if args.gpu is None else f"gpu {args.gpu}",
        nets=nets, synset=":".join(remap) if remap else None, fold_batchnorm=fold,
        layers_without_weights=layers_without_weights(model.net, args.weights)
        if args.allow_missing else (),
        max_image_bytes=args.max_image_bytes, max_pixels=args.max_pixels)
    spec = BackendSpec(args.backend, model.text, model.source, args.weights, args.blob,
                       netinfo.at_input_size(model.net, sizes[0]), args.gpu, args.allow_missing, fold)
    folds = fold_batchnorm.plan(model.net) if fold else []
    if folds:
        print(f"caffe runs {len(folds)} BatchNorm layer(s) folded into the convolutions before "
              f"them (--keep-batchnorm runs them as written)", file=sys.stderr)
    results = Path(args.results or f"{Path(model.path).stem}.eval.json")
    accuracies: dict[str, list[float]] = {accuracy_key(k): [] for k in topk}
    with Nets(spec, nets) as shared:
        for size in sizes:
            settings = settings_at(crop_size=size, base_size=base_size(args, preset, size),
                                   scales=protocol_scales(args.crops, size))
            preprocess = Preprocess(settings.mean, settings.std, settings.base_size, size, args.crops)
            job = Job(entries, args.root, preprocess, args.batch, max(topk), args.workers,
                      ImageLimits(settings.max_image_bytes, settings.max_pixels))
            target = results_path_for_size(results, size) if args.sizes else results
            document = evaluate_size(job, settings, target, shared, f"{size}px " if args.sizes else "")
            print(report(document, target))
            for key in accuracies:
                accuracies[key].append(document["accuracy"][key] or 0.0)
    if args.sizes:
        png = plot_path(results)
        plot_accuracy(sizes, accuracies, f"{Path(model.path).name}, {args.crops} crop(s)", png)
        print(sweep_table(sizes, accuracies))
        print(f"plot: {png}")
    return 0


def choose_preset(args) -> str | None:
    """--preset, else the family the model's file name names (said out loud), else none: then the
    preprocessing is the user's --mean and --std alone."""
    if args.preset is not None:
        return args.preset
    name = Path(args.model).name
    guessed = preset_for_model(name)
    if guessed is None:
        if args.mean is None or args.std is None:
            raise UsageError(f"no preset for {name}: pass --preset ({', '.join(sorted(PRESETS))}) "
                             f"or both --mean and --std")
        return None
    print(f"archc: note: preset '{guessed}' chosen from the file name (--preset sets another)",
          file=sys.stderr)
    return guessed


def crop_size(args, model: Model, preset: Preset | None) -> int:
    """--crop-size, else the size the model declares (an .arch's --size), else the preset's."""
    size = args.crop_size or netinfo.declared_crop_size(model.net) or (preset and preset.crop_size)
    if not size:
        raise UsageError(f"{model.path} declares no square input and no preset names a crop size: "
                         f"pass --crop-size")
    return size


def base_size(args, preset: Preset | None, crop: int) -> int:
    """--base-size, else the preset's base for the crop size, else the crop size itself."""
    return args.base_size or (preset.base_for(crop) if preset else crop)


def protocol_scales(crops: int, crop: int) -> tuple[int, ...] | None:
    return tuple(scales_for(crop)) if crops == 144 else None


def preset_remap(preset: Preset | None, lines, val: str) -> tuple[str, str] | None:
    """A preset's label remap (VAL:MODEL), its VAL order taken from the val list itself where its
    labels match a published list: the seed evaluates Inception-v3 with ILSVRC2015_val.txt, already
    in the model's order, while the usual list is in ILSVRC2012 order."""
    if preset is None or not preset.synset:
        return None
    assumed, model = parse_remap(preset.synset)
    order = val_list_order([(line.path, line.label) for line in lines])
    if order is None:
        print(f"archc: note: taking {val}'s labels to be in ILSVRC{assumed} order and remapping "
              f"them to the model's ILSVRC{model} order (--synset sets this)", file=sys.stderr)
        return assumed, model
    if order == model:
        return None
    return order, model


def layers_without_weights(net: Net, weights_path: str) -> tuple[str, ...]:
    """Under --allow-missing, the layers that will run on their fillers, said out loud (the
    results file records them too)."""
    report = weights.compare(weights.expected_from_ir(infer_shapes(net)),
                             weights.read_caffemodel(weights_path))
    if report.missing:
        print(f"archc: warning: {len(report.missing)} layer(s) have no weights and run on their "
              f"random fillers: {', '.join(report.missing)}", file=sys.stderr)
    return tuple(report.missing)


class Nets:
    """The forward passes, opened when first needed (not at all when every results file is
    already complete) and shared by the crop sizes of a sweep."""

    def __init__(self, spec: BackendSpec, count: int):
        self.spec, self.count, self.forwarder = spec, count, None

    def get(self) -> Forwarder:
        if self.forwarder is None:
            self.forwarder = Forwarder(self.spec, self.count)
        return self.forwarder

    def __enter__(self) -> "Nets":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.forwarder is not None:
            self.forwarder.close()


def evaluate_size(job: Job, settings: EvalSettings, target: Path, nets: Nets, label: str) -> dict:
    """The results document of one crop size: computed, resumed, or read back when complete."""
    with Lock(target.with_name(target.name + ".lock"), target):
        state = open_journal(target, settings, job.groups())
        if isinstance(state, dict):
            print(f"{target} is already complete for these settings", file=sys.stderr)
            return state
        run(job, nets.get(), state, Progress(len(job.entries), settings.topk, label))
        document = results_document(state.settings, state.records())
        write_final(state, document)
    return document


def default_nets(backend: str, gpu: int | None) -> int:
    """One Caffe per core on a CPU (up to 4: each holds its own activations); OpenCV threads
    itself, and a GPU takes one net."""
    if backend != "caffe" or gpu is not None:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def report(document: dict, results: Path) -> str:
    settings = EvalSettings.from_json(document["settings"], results)
    counts = document["counts"]
    lines = [f"{Path(settings.model).name}: {settings.crops} crop(s) of {settings.crop_size} "
             f"from {settings.base_size}, {settings.backend} {settings.device}"
             + (f", labels remapped {settings.synset}" if settings.synset else ""),
             f"  preprocessing (BGR): mean {_triple(settings.mean)}, std {_triple(settings.std)}"
             + (f" (preset {settings.preset})" if settings.preset else ""),
             f"  images {counts['images']}: evaluated {counts['evaluated']}, skipped "
             f"{counts['skipped']}, evaluated with notes {counts['with_notes']}"]
    for key, accuracy in document["accuracy"].items():
        shown = "n/a" if accuracy is None else f"{100 * accuracy:.2f}%"
        lines.append(f"  {key:<6} {shown}  ({document['correct'][key]}/{counts['evaluated']})")
    for record in document["skipped"][:SHOWN_SKIPS]:
        lines.append(f"  skipped {record['image']}: {record['skipped']}")
    if counts["skipped"] > SHOWN_SKIPS:
        lines.append(f"  ... {counts['skipped'] - SHOWN_SKIPS} more skipped images are listed in the results")
    lines.append(f"  results: {results}")
    return "\n".join(lines)


def sweep_table(sizes: list[int], accuracies: dict[str, list[float]]) -> str:
    header = "crop size  " + "  ".join(f"{key:>7}" for key in accuracies)
    rows = [f"{size:>9}  " + "  ".join(f"{100 * values[i]:>6.2f}%" for values in accuracies.values())
            for i, size in enumerate(sizes)]
    return "\n".join([header, *rows])
