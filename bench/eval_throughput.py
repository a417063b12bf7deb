"""`archc eval` throughput on ResNeXt-50 32x4d (CPU, batch 8) against two baselines, same run:

- forward only: the same net and batch size, random input already in memory, no images at all;
  measured both for one net in this process and for the same replicated forward `archc eval`
  uses (`--nets`), so the ratio eval / forward shows what loading and bookkeeping cost
  (target >= 0.9);
- the seed script's loop: one image at a time, read, resized, normalised, centre-cropped and
  forwarded at batch size 1 by one pycaffe net (target: eval >= 2x).

The net is generated from archs/resnext.arch with filler-initialised weights written by archc; the
images are synthetic 500x375 JPEGs. Eval runs through the same `run` loop as `archc eval`, after
the nets are loaded (loading is not throughput).

    .venv/bin/python bench/eval_throughput.py [--images 96] [--backend caffe|opencv] [--nets N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from archc.cmd_eval import default_nets  # noqa: E402
from archc.model import compile_arch  # noqa: E402
from runtime import weights  # noqa: E402
from runtime.backends import BackendSpec, Forwarder  # noqa: E402
from runtime.eval.crops import Preprocess, centre_box, resize_shorter_side  # noqa: E402
from runtime.eval.model import at_input_size  # noqa: E402
from runtime.eval.presets import PRESETS  # noqa: E402
from runtime.eval.progress import Progress  # noqa: E402
from runtime.eval.results import open_journal  # noqa: E402
from runtime.eval.run import Job, run  # noqa: E402
from runtime.eval.vallist import Entry  # noqa: E402

BATCH = 8
PRESET = PRESETS["resnext"]


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


def forward_only(forwarder: Forwarder, batches: int) -> float:
    """Images/s of forward passes on in-memory random batches, keeping the forwarder busy."""
    batch = np.random.default_rng(1).standard_normal((BATCH, 3, 224, 224)).astype(np.float32)
    warm = [forwarder.submit(batch) for _ in range(max(1, forwarder.ahead))]
    for future in warm:
        future.result()
    start = time.perf_counter()
    pending = [forwarder.submit(batch) for _ in range(batches)]
    for future in pending:
        future.result()
    return batches * BATCH / (time.perf_counter() - start)


def seed_loop(spec: BackendSpec, directory: Path, entries: list[Entry]) -> float:
    """Images/s of the seed script's protocol: one image, batch 1, everything in sequence."""
    backend = spec.open()
    mean, std = np.array(PRESET.mean, np.float32), np.array(PRESET.std, np.float32)
    base, crop = PRESET.base_for(224), 224

    def one(entry: Entry) -> int:
        image = cv2.imread(str(directory / entry.path))
        image = (resize_shorter_side(image, base).astype(np.float32) - mean) / std
        cut = centre_box(*image.shape[:2], crop).cut(image)
        scores = backend.forward(cut.transpose(2, 0, 1)[None].copy())
        return int(np.argmax(scores))

    one(entries[0])  # warm-up
    start = time.perf_counter()
    for entry in entries:
        one(entry)
    return len(entries) / (time.perf_counter() - start)


def eval_run(spec: BackendSpec, forwarder: Forwarder, directory: Path, entries: list[Entry],
             workers: int) -> float:
    preprocess = Preprocess(PRESET.mean, PRESET.std, PRESET.base_for(224), 224, 1)
    job = Job(entries, str(directory), preprocess, BATCH, 5, workers)
    journal = open_journal(directory / "results.json", {"bench": "eval_throughput"})
    start = time.perf_counter()
    run(job, forwarder, journal, Progress(len(entries), (1, 5), "eval "))
    return len(entries) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96, help="images for the eval run")
    parser.add_argument("--seed-images", type=int, default=16, help="images for the seed loop")
    parser.add_argument("--backend", choices=("caffe", "opencv"), default="caffe")
    parser.add_argument("--nets", type=int, help="as archc eval --nets (default: its default)")
    parser.add_argument("--workers", type=int, default=1, help="as archc eval --workers")
    args = parser.parse_args()
    nets = args.nets or default_nets(args.backend, None)

    net, text = compile_arch(str(REPO / "archs" / "resnext.arch"), {"depth": "50", "card": "32"})
    shaped = at_input_size(net, 224)
    with tempfile.TemporaryDirectory(prefix="archc-bench-") as temporary:
        directory = Path(temporary)
        weights_path = directory / "resnext50.caffemodel"
        weights.write_caffemodel(weights_path, weights.initial_weights(shaped))
        entries = make_images(directory, args.images)
        spec = BackendSpec(args.backend, text, "resnext50-32x4d", str(weights_path), "prob", shaped)

        seed = seed_loop(BackendSpec("caffe", text, "resnext50-32x4d", str(weights_path), "prob",
                                     shaped), directory, entries[:args.seed_images])
        single = Forwarder(spec, 1)
        forward_single = forward_only(single, batches=4)
        single.close()
        del single
        replicated = Forwarder(spec, nets)
        forward_replicated = forward_only(replicated, batches=4 * nets)
        evaluated = eval_run(spec, replicated, directory, entries, args.workers)
        replicated.close()

    print(f"\nResNeXt-50 32x4d, 224x224, CPU, batch {BATCH}, backend {args.backend}, {nets} net(s), "
          f"{args.workers} loading worker(s), {args.images} images")
    rows = [("seed loop (pycaffe, batch 1, sequential)", seed),
            ("forward only, 1 net", forward_single),
            (f"forward only, {nets} net(s) as eval uses", forward_replicated),
            ("archc eval (decode + crop + forward + results)", evaluated)]
    for name, rate in rows:
        print(f"  {name:<50} {rate:7.2f} img/s")
    print(f"  eval / forward-only (same nets)   {evaluated / forward_replicated:5.2f}   (target >= 0.9)")
    print(f"  eval / forward-only (1 net)       {evaluated / forward_single:5.2f}")
    print(f"  eval / seed loop                  {evaluated / seed:5.2f}   (target >= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
