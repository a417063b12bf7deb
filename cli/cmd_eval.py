"""`archc eval MODEL [--PARAM VALUE ...] --weights W --val LIST [options]`: the seed's ImageNet
evaluation protocol (see runtime/eval), batched, parallel, resumable, on Caffe, OpenCV, or the net
exported to ONNX Runtime or torch."""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections import Counter
from pathlib import Path

from archc.cli.argparsing import ArgumentParser, integer_at_least
from archc.cli.arguments import split_overrides
from archc.cli.main import reports_errors
from archc.errors import UsageError
from archc.ir import Net, infer_shapes
from archc.model import Model, load_model
from archc.runtime import fold_batchnorm, weights
from archc.runtime.backends import BACKENDS, BackendSpec, Forwarder
from archc.runtime.eval import model as netinfo
from archc.runtime.eval.cluster import LOCAL, RayOptions, RayWorkers
from archc.runtime.eval.crops import CROP_COUNTS, Preprocess, scales_for
from archc.runtime.eval.errors import NothingEvaluated
from archc.runtime.eval.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageLimits
from archc.runtime.eval.metrics import accuracy_key, results_document
from archc.runtime.eval.presets import PRESETS, Preset, preset_for_model
from archc.runtime.eval.progress import Progress
from archc.runtime.eval.results import Journal, Lock, open_journal, write_final
from archc.runtime.eval.run import Job, run
from archc.runtime.eval.settings import EvalSettings
from archc.runtime.eval.sweep import plot_accuracy, plot_path, results_path_for_size
from archc.runtime.eval.synsets import (parse_remap, read_class_names, remap_table, synset_path,
                                       val_list_order)
from archc.runtime.eval.vallist import image_path, label_entries, read_val_list
from archc.runtime.processes import termination_interrupts

SHOWN_SKIPS = 10
SHOWN_PREDICTIONS = 5
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


def _address(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a Ray address (auto, ray://HOST:PORT, HOST:PORT)")
    return text
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
        + "\nexample:\n  archc eval archs/resnext.arch --depth 101 --weights resnext101.caffemodel \\\n"
          "      --val ILSVRC2012_val.txt --root ~/Database/ILSVRC2012 --crops 12",
        usage="archc eval MODEL.prototxt|MODEL.arch [--PARAM VALUE ...] --weights FILE "
              "--val LIST [options]",
        description="Top-k accuracy of a model on a labelled image list, with the seed's\n"
                    "preprocessing and 1/12/144-crop protocols. Parameters of an .arch MODEL\n"
                    "follow it as --PARAM VALUE. The results file is written as the run goes:\n"
                    "rerun the same command after an interruption to resume.")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--weights", required=True, metavar="FILE",
                        help=".caffemodel with the trained weights")
    parser.add_argument("--val", required=True, metavar="LIST",
                        help="val list: 'relative/path label' per line")
    parser.add_argument("--root", metavar="DIR", help="directory the val list's paths are under "
                                                      "(default: the current directory)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="preprocessing of a model family (default: the family the model's "
                             "file name names, if any; else no preset, and --mean and --std are "
                             "needed)")
    parser.add_argument("--mean", type=_bgr, metavar="B,G,R",
                        help="per-channel mean, or one value for all (default: the preset's)")
    parser.add_argument("--std", type=_std, metavar="B,G,R",
                        help="per-channel std, or one value for all (default: the preset's)")
    parser.add_argument("--base-size", type=integer_at_least(1), metavar="N",
                        help="shorter side is resized to this first (default: the preset's base "
                             "for the crop size, as listed below, else the crop size itself)")
    parser.add_argument("--crop-size", type=integer_at_least(1), metavar="N",
                        help="side of the square crops (default: the model's input size, else the "
                             "preset's)")
    parser.add_argument("--crops", type=int, choices=CROP_COUNTS, default=1,
                        help="1: centre crop; 12: corners, centre and whole of the image squashed "
                             "to base x base, and mirrors; 144: the 12 of three squares at each of "
                             "four scales (default: 1)")
    parser.add_argument("--batch", type=integer_at_least(1), default=8, metavar="N",
                        help="crops per forward pass (default: 8)")
    parser.add_argument("--topk", type=_int_list, metavar="K,...",
                        help="accuracies to report (default: 1,5, those of them up to the model's "
                             "number of classes)")
    parser.add_argument("--blob", default="prob", metavar="NAME",
                        help="output blob holding the class scores (default: prob)")
    parser.add_argument("--results", metavar="FILE",
                        help="results JSON (default: MODEL-stem.eval.json); an interrupted run "
                             "resumes from it")
    parser.add_argument("--backend", choices=BACKENDS, default="caffe",
                        help="caffe: real pycaffe (`make caffe` builds it); opencv: OpenCV's DNN "
                             "module, which needs no Caffe; onnxruntime, torch: the net exported "
                             "(archc[onnx], archc[torch]) (default: caffe)")
    parser.add_argument("--gpu", type=int, metavar="N", help="run Caffe (or torch) on GPU N")
    parser.add_argument("--workers", type=integer_at_least(0), metavar="N",
                        help=f"image-loading processes, 0 to load in this process (default: one "
                             f"per core but one, 1 to 4: {default_workers()} here)")
    parser.add_argument("--nets", type=integer_at_least(1), metavar="N",
                        help="copies of the net forwarding in parallel processes (default: one per "
                             "core, up to 4, for Caffe on the CPU; else 1)")
    parser.add_argument("--synset", metavar="VAL:MODEL",
                        help="class-order remap by WNID: VAL:MODEL (each 2012, 2015 or a synset "
                             "file), MODEL (val in 2012 order), or none")
    parser.add_argument("--labels", metavar="WORDS",
                        help="class names, one a line in the model's class order, after a WNID or "
                             "not (a synset file with words, like synset_words.txt); default: the "
                             "words of --synset's MODEL list, where it has them")
    parser.add_argument("--sizes", type=_int_list, metavar="N,N,...",
                        help="comma-separated crop sizes, e.g. 224,256,288,320: evaluate at each "
                             "(a results file per size, MODEL-stem.eval-224.json, ...) and plot "
                             "accuracy against crop size (MODEL-stem.eval-sizes.png)")
    parser.add_argument("--max-pixels", type=_limit, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help=f"skip images whose header declares more pixels (default: "
                             f"{DEFAULT_MAX_PIXELS:,}: decoding takes 3 bytes a pixel; none: no "
                             f"limit)")
    parser.add_argument("--max-image-bytes", type=_limit, default=DEFAULT_MAX_BYTES, metavar="N",
                        help=f"skip image files larger than this (default: {DEFAULT_MAX_BYTES:,}; "
                             f"none: no limit)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="load even if some layers have no weights")
    parser.add_argument("--ray", nargs="?", const=LOCAL, type=_address, metavar="ADDRESS",
                        help="evaluate on a Ray cluster: join ADDRESS (auto, ray://HOST:PORT, "
                             "HOST:PORT), or start a local Ray instance without one; every node "
                             "reads the images from --root")
    parser.add_argument("--ray-workers", type=integer_at_least(1), metavar="N",
                        help="with --ray: workers, one net and one core each (default: one per "
                             "CPU of the cluster)")
    parser.add_argument("--ray-shared-paths", action="store_true",
                        help="with --ray: --weights is at that path on every node; read it there "
                             "rather than send it through Ray's object store (checked by SHA-256 "
                             "either way)")
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
    root = args.root or "."
    if not Path(root).is_dir():
        raise UsageError(f"--root {root} is not a directory")
    check_ray_options(args)
    nets = 1 if args.ray is not None else args.nets or default_nets(args.backend, args.gpu)
    if nets > 1 and args.gpu is not None:
        raise UsageError("--nets applies to CPU runs; on a GPU one net is fed in large batches")
    workers = default_workers() if args.workers is None else args.workers

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
    names = class_names(args.labels, remap, num_classes)

    fold = args.backend == "caffe" and not args.keep_batchnorm
    model_sha256 = netinfo.sha256_of_text(model.text)
    weights_sha256 = netinfo.sha256_of_file(args.weights)
    # everything but the crop size and what follows from it
    settings_at = functools.partial(
        EvalSettings,
        model=netinfo.absolute(model.path), model_sha256=model_sha256,
        weights=netinfo.absolute(args.weights), weights_sha256=weights_sha256,
        val=netinfo.absolute(args.val), val_sha256=netinfo.sha256_of_file(args.val),
        root=netinfo.absolute(root), preset=preset_name,
        mean=args.mean or preset.mean, std=args.std or preset.std, crops=args.crops,
        batch=args.batch, topk=topk, blob=args.blob,
        backend=args.backend, device="cpu" if args.gpu is None else f"gpu {args.gpu}",
        nets=nets, synset=":".join(remap) if remap else None, fold_batchnorm=fold,
        labels=netinfo.absolute(args.labels) if args.labels else None,
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
    evaluated = 0
    shared = RayWorkers(RayOptions(args.ray, args.ray_workers, args.ray_shared_paths), spec,
                        model_sha256, weights_sha256) if args.ray is not None else Nets(spec, nets)
    with shared:
        for size in sizes:
            settings = settings_at(crop_size=size, base_size=base_size(args, preset, size),
                                   scales=protocol_scales(args.crops, size))
            preprocess = Preprocess(settings.mean, settings.std, settings.base_size, size, args.crops)
            job = Job(entries, root, preprocess, args.batch, max(topk), workers,
                      ImageLimits(settings.max_image_bytes, settings.max_pixels))
            target = results_path_for_size(results, size) if args.sizes else results
            document = evaluate_size(job, settings, target, shared, f"{size}px " if args.sizes else "",
                                     args, names)
            print(report(document, target))
            for key in accuracies:
                accuracies[key].append(document["accuracy"][key] or 0.0)
            evaluated = max(evaluated, document["counts"]["evaluated"])
    if args.sizes:
        png = plot_path(results)
        title = (f"{Path(model.path).name}, weights {Path(args.weights).name}\n"
                 f"{evaluated} images, {args.crops} crop(s) per image")
        protocols = [f"{size}\nfrom {base_size(args, preset, size)}" for size in sizes]
        plot_accuracy(sizes, accuracies, title, protocols, png)
        print(sweep_table(sizes, accuracies))
        print(f"plot: {png}")
    return 0


def check_ray_options(args) -> None:
    """--ray runs one net per Ray worker on one core: the options that size this machine's
    processes do not apply, and the --ray-... ones need --ray."""
    if args.ray is not None:
        for flag, given in (("--nets", args.nets), ("--workers", args.workers), ("--gpu", args.gpu)):
            if given is not None:
                raise UsageError(f"{flag} sizes a run on this machine; with --ray each Ray worker "
                                 f"loads its images and runs one net on one CPU core "
                                 f"(--ray-workers sets how many): drop {flag}")
    else:
        for flag, given in (("--ray-workers", args.ray_workers),
                            ("--ray-shared-paths", args.ray_shared_paths or None)):
            if given is not None:
                raise UsageError(f"{flag} applies to --ray runs: add --ray or drop {flag}")


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


def class_names(labels: str | None, remap: tuple[str, str] | None,
                num_classes: int) -> list[str] | None:
    """The model's class names: --labels, else the words of the remap's MODEL synset list."""
    if labels is not None:
        names = read_class_names(labels)
        if names is None:
            raise UsageError(f"--labels {labels} holds WNIDs without words: give a file with a "
                             f"class name on each line")
    else:
        names = read_class_names(remap[1]) if remap else None
    if names is not None and len(names) != num_classes:
        raise UsageError(f"{labels or synset_path(remap[1])} names {len(names)} classes but the "
                         f"model has {num_classes}")
    return names


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
    already complete) and shared by the crop sizes of a sweep; `RayWorkers` is the same on a
    Ray cluster."""

    def __init__(self, spec: BackendSpec, count: int):
        self.spec, self.count, self.forwarder = spec, count, None

    def get(self) -> Forwarder:
        if self.forwarder is None:
            self.forwarder = Forwarder(self.spec, self.count)
        return self.forwarder

    def run(self, job: Job, journal: Journal, progress: Progress) -> None:
        run(job, self.get(), journal, progress)

    def __enter__(self) -> "Nets":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.forwarder is not None:
            self.forwarder.close()


def evaluate_size(job: Job, settings: EvalSettings, target: Path, nets: Nets | RayWorkers,
                  label: str, args, names: list[str] | None) -> dict:
    """The results document of one crop size: computed, resumed, or read back when complete.
    A run that evaluated no image keeps no results (a rerun with the right --root starts afresh)
    and fails."""
    with Lock(target.with_name(target.name + ".lock"), target):
        state = open_journal(target, settings, job.groups())
        if isinstance(state, dict):
            print(f"{target} is already complete for these settings", file=sys.stderr)
            return state
        nets.run(job, state, Progress(len(job.entries), settings.topk, label))
        document = results_document(state.settings, state.records(), names)
        if not document["counts"]["evaluated"]:
            state.discard()
            raise NothingEvaluated(nothing_evaluated(document, job, args))
        write_final(state, document)
    return document


def nothing_evaluated(document: dict, job: Job, args) -> str:
    """Why a run evaluated no image: the reasons counted, the first paths tried, and what to fix."""
    skipped = document["skipped"]
    reasons = Counter(record["skipped"] for record in skipped)
    counted = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    root = netinfo.absolute(job.root)
    tried = ", ".join(image_path(root, record["image"]) for record in skipped[:3])
    given = f"--root {args.root}" if args.root else "--root . (the default: the current directory)"
    if reasons.most_common(1)[0][0] == "missing":
        fix = f"pass --root DIR, the directory the paths in {args.val} are relative to"
    else:
        fix = "check the images: none of them could be read as a photo"
    return (f"no image was evaluated: all {len(skipped)} were skipped ({counted}); tried "
            f"{tried}{', ...' if len(skipped) > 3 else ''} with {given}: {fix}")


def default_workers() -> int:
    """Image-loading processes: one per core but the one feeding the net, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


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
    for k in settings.topk:
        tied = document.get("ties", {}).get(accuracy_key(k), 0)
        if tied:
            lines.append(f"  {accuracy_key(k)} is inflated by ties: {tied} of {counts['evaluated']} "
                         f"images have equal {_ordinal(k)} and {_ordinal(k + 1)} best scores, and "
                         f"equal scores rank the lower class index first (a saturated softmax, from "
                         f"filler weights?)")
    names = document.get("class_names")
    if names:
        shown = document["images"][:SHOWN_PREDICTIONS]
        lines.append(f"  best classes of the first {len(shown)} images (label: predictions):")
        for record in shown:
            best = ", ".join(f"{_short(names[c])} {score:.3g}"
                             for c, score in zip(record["top"][:3], record["scores"]))
            lines.append(f"    {record['image']}  {_short(names[record['label']])}: {best}")
    for record in document["skipped"][:SHOWN_SKIPS]:
        lines.append(f"  skipped {record['image']}: {record['skipped']} "
                     f"({image_path(settings.root, record['image'])})")
    if counts["skipped"] > SHOWN_SKIPS:
        lines.append(f"  ... {counts['skipped'] - SHOWN_SKIPS} more skipped images are listed in the results")
    missing = sum(1 for record in document["skipped"] if record["skipped"] == "missing")
    if missing > counts["images"] / 2:
        lines.append(f"  most images are missing under {settings.root}: is --root the directory "
                     f"the paths in {Path(settings.val).name} are relative to?")
    lines.append(f"  results: {results}")
    return "\n".join(lines)


def _short(name: str) -> str:
    """A class name's first synonym: `tench` for `tench, Tinca tinca`."""
    return name.split(",")[0]


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def sweep_table(sizes: list[int], accuracies: dict[str, list[float]]) -> str:
    header = "crop size  " + "  ".join(f"{key:>7}" for key in accuracies)
    rows = [f"{size:>9}  " + "  ".join(f"{100 * values[i]:>6.2f}%" for values in accuracies.values())
            for i, size in enumerate(sizes)]
    return "\n".join([header, *rows])
