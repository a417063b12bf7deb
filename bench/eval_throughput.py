"""`archc eval` throughput on ResNeXt-50 32x4d (CPU, batch 8) against two baselines, same run:

- forward only: the same net and batch size, random input already in memory, no images at all;
  measured both for one net in this process and for the same replicated forward `archc eval`
  uses (`--nets`), so the ratio eval / forward shows what loading and bookkeeping cost
  (target >= 0.9);
- the seed script's loop: one image at a time, read, resized, normalised, centre-cropped and
  forwarded at batch size 1 by one pycaffe net of the prototxt as written (target: eval >= 2x).

Eval and the forward-only rows run Caffe with BatchNorm folded into the convolutions, as
`archc eval` does by default; one more row gives the forward pass of the net as written, to show
what folding gains.

The net is generated from archs/resnext.arch with filler-initialised weights written by archc; the
images are synthetic 500x375 JPEGs. Eval runs through the same `run` loop as `archc eval`, after
the nets are loaded (loading is not throughput); each eval round still starts its image-loading
process and fills its pipeline, about half a second, which 256 images a round make a few percent
of the time as a real run would make it nothing (64 images a round measure eval / forward 0.88,
256 measure 0.97). Three rounds alternate the measurements and the
ratios are taken within each round, so a busy spell of a shared machine does not favour one side.

    .venv/bin/python bench/eval_throughput.py [--images 256] [--backend caffe|opencv] [--nets N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from archc.cli.cmd_eval import default_nets  # noqa: E402
from archc.model import load_model  # noqa: E402
from archc.runtime import weights  # noqa: E402
from archc.runtime.backends import BackendSpec, Forwarder  # noqa: E402
from archc.runtime.eval.crops import Preprocess  # noqa: E402
from archc.runtime.eval.images import ImageLimits  # noqa: E402
from archc.runtime.eval.model import at_input_size  # noqa: E402
from archc.runtime.eval.presets import PRESETS  # noqa: E402
from archc.runtime.eval.progress import Progress  # noqa: E402
from archc.runtime.eval.results import open_journal  # noqa: E402
from archc.runtime.eval.run import Job, run  # noqa: E402
from archc.runtime.eval.settings import EvalSettings  # noqa: E402
from archc.runtime.eval.vallist import Entry  # noqa: E402

BATCH = 8
PRESET = PRESETS["resnext"]
PREPROCESS = Preprocess(PRESET.mean, PRESET.std, PRESET.base_for(224), 224, 1)
ROUNDS = 3
ROWS = ("seed", "written1", "forward1", "forwardN", "eval")


def make_images(directory: Path, count: int) -> list[Entry]:
    rng = np.random.default_rng(0)
    entries = []
    for index in range(count):
        # smooth colour fields plus noise: decodes like a photograph, not like flat colour
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = cv2.resize(small, (500, 375), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        name = f"{index:04d}.jpg"
        cv2.imwrite(str(directory / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        entries.append(Entry(index, name, int(rng.integers(0, 1000))))
    return entries


def forward_only(forwarder: Forwarder, batch: np.ndarray, batches: int) -> float:
    """Images/s of forward passes of one in-memory batch, keeping the forwarder busy."""
    start = time.perf_counter()
    pending = [forwarder.submit(batch) for _ in range(batches)]
    for future in pending:
        future.result()
    return batches * BATCH / (time.perf_counter() - start)


def seed_loop(backend, directory: Path, entries: list[Entry]) -> float:
    """Images/s of the seed script's protocol: read, preprocess and forward one image at a time,
    batch 1, everything in sequence."""
    start = time.perf_counter()
    for entry in entries:
        crops = PREPROCESS(cv2.imread(str(directory / entry.path)))
        int(np.argmax(backend.forward(crops)))
    return len(entries) / (time.perf_counter() - start)


def eval_settings(spec: BackendSpec, nets: int) -> EvalSettings:
    """What the results journal of an eval round records (nothing reads it back)."""
    return EvalSettings(
        model=spec.source, model_sha256="", weights=spec.weights_path, weights_sha256="",
        val="<synthetic>", val_sha256="", root="", preset="resnext", mean=PRESET.mean,
        std=PRESET.std, crop_size=PREPROCESS.crop_size, base_size=PREPROCESS.base_size, crops=1, scales=None,
        batch=BATCH, topk=(1, 5), blob=spec.blob, backend=spec.kind, device="cpu", nets=nets,
        synset=None, fold_batchnorm=spec.fold, layers_without_weights=(),
        max_image_bytes=ImageLimits().max_bytes, max_pixels=ImageLimits().max_pixels)


def eval_run(forwarder: Forwarder, directory: Path, entries: list[Entry], workers: int,
             results: Path, settings: EvalSettings) -> float:
    """Images/s of the whole loop, starting its loading workers included."""
    job = Job(entries, str(directory), PREPROCESS, BATCH, 5, workers)
    journal = open_journal(results, settings, job.groups())
    start = time.perf_counter()
    run(job, forwarder, journal, Progress(len(entries), (1, 5), "eval "))
    return len(entries) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images per eval round")
    parser.add_argument("--seed-images", type=int, default=12, help="images per seed-loop round")
    parser.add_argument("--backend", choices=("caffe", "opencv"), default="caffe")
    parser.add_argument("--nets", type=int, help="as archc eval --nets (default: its default)")
    parser.add_argument("--workers", type=int, default=1, help="as archc eval --workers")
    args = parser.parse_args()
    nets = args.nets or default_nets(args.backend, None)

    model = load_model(REPO / "archs" / "resnext.arch", {"depth": "50", "card": "32"})
    shaped = at_input_size(model.net, 224)
    with tempfile.TemporaryDirectory(prefix="archc-bench-") as temporary:
        directory = Path(temporary)
        weights_path = directory / "resnext50.caffemodel"
        weights.write_caffemodel(weights_path, weights.initial_weights(shaped))
        entries = make_images(directory, ROUNDS * (args.images + args.seed_images))
        spec = BackendSpec(args.backend, model.text, "resnext50-32x4d", str(weights_path), "prob", shaped)
        # the forward-only input: the first images exactly as eval feeds them
        batch = np.concatenate([PREPROCESS(cv2.imread(str(directory / entry.path)))
                                for entry in entries[:BATCH]])
        seed_net = replace(spec, kind="caffe", fold=False).open()
        seed_loop(seed_net, directory, entries[:1])
        written = Forwarder(replace(spec, fold=False), 1)
        single, replicated = Forwarder(spec, 1), Forwarder(spec, nets)
        for forwarder in (written, single, replicated):  # warm-up: every replica started and loaded
            forward_only(forwarder, batch, max(1, forwarder.ahead))
        rates: dict[str, list[float]] = {name: [] for name in ROWS}
        # Rounds alternate the measurements, so a slow spell of a shared machine hits them all.
        for number in range(ROUNDS):
            mine = entries[number::ROUNDS]
            seeds, evals = mine[:args.seed_images], mine[args.seed_images:]
            rates["seed"].append(seed_loop(seed_net, directory, seeds))
            rates["written1"].append(forward_only(written, batch, 3))
            rates["forward1"].append(forward_only(single, batch, 3))
            rates["forwardN"].append(forward_only(replicated, batch, 3 * nets))
            rates["eval"].append(eval_run(replicated, directory, evals, args.workers,
                                          directory / f"results-{number}.json",
                                          eval_settings(spec, nets)))
        for forwarder in (written, single, replicated):
            forwarder.close()

    print(f"\nResNeXt-50 32x4d, 224x224, CPU, batch {BATCH}, backend {args.backend}, {nets} net(s), "
          f"{args.workers} loading worker(s); {ROUNDS} rounds")
    titles = {"seed": "seed loop (pycaffe, batch 1, sequential)",
              "written1": "forward only, 1 net, BatchNorm as written",
              "forward1": "forward only, 1 net, folded",
              "forwardN": f"forward only, {nets} net(s) as eval uses",
              "eval": "archc eval (decode + crop + forward + results)"}
    for name in ROWS:
        shown = "  ".join(f"{rate:6.2f}" for rate in rates[name])
        print(f"  {titles[name]:<48} {shown}  img/s")
    # Ratios within a round: a shared machine's speed changes between rounds, not within one.
    ratios = {
        "eval / forward only, same nets (target >= 0.9)": ("eval", "forwardN"),
        "eval / forward only, 1 net": ("eval", "forward1"),
        "forward only, 1 net: folded / as written": ("forward1", "written1"),
        "eval / seed loop (target >= 2)": ("eval", "seed"),
    }
    for title, (top, bottom) in ratios.items():
        values = [a / b for a, b in zip(rates[top], rates[bottom])]
        shown = "  ".join(f"{value:6.2f}" for value in values)
        print(f"  {title:<48} {shown}  median {statistics.median(values):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
