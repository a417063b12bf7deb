"""Eval forward throughput of the exported backends against Caffe on ResNeXt-50 32x4d (CPU,
batch 8, 224x224), as ratios measured in one run:

- caffe: pycaffe with BatchNorm folded into the convolutions, as `archc eval` runs it by default,
  one net in this process (`--nets 1`);
- onnxruntime and torch: the net exported by archc (BatchNorm as written), as `archc eval
  --backend onnxruntime|torch` runs it.

Each backend forwards the same in-memory batch through the same `Forwarder` eval uses; rounds
alternate the backends, and the ratios are taken within each round, so a busy spell of a shared
machine does not favour one side. No target: the figures say whether eval's default should change.

    .venv/bin/python bench/export_throughput.py [--rounds 3] [--batches 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from archc.model import load_model  # noqa: E402
from archc.runtime import weights  # noqa: E402
from archc.runtime.backends import BackendSpec, Forwarder  # noqa: E402
from archc.runtime.eval.model import at_input_size  # noqa: E402

BATCH = 8
BACKENDS = ("caffe", "onnxruntime", "torch")


def rate(forwarder: Forwarder, batch: np.ndarray, batches: int) -> float:
    """Images/s of forward passes of one in-memory batch."""
    start = time.perf_counter()
    for _ in range(batches):
        forwarder.submit(batch).result()
    return batches * len(batch) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=3, help="batches per backend per round")
    args = parser.parse_args()

    model = load_model(REPO / "archs" / "resnext.arch", {"depth": "50", "card": "32"})
    shaped = at_input_size(model.net, 224)
    batch = np.random.default_rng(0).standard_normal((BATCH, 3, 224, 224), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="archc-bench-") as temporary:
        weights_path = Path(temporary) / "resnext50.caffemodel"
        weights.write_caffemodel(weights_path, weights.initial_weights(shaped))
        forwarders = {kind: Forwarder(BackendSpec(kind, model.text, "resnext50-32x4d",
                                                  str(weights_path), "prob", shaped,
                                                  fold=kind == "caffe"))
                      for kind in BACKENDS}
        for forwarder in forwarders.values():  # warm-up
            rate(forwarder, batch, 1)
        rates: dict[str, list[float]] = {kind: [] for kind in BACKENDS}
        for _ in range(args.rounds):
            for kind, forwarder in forwarders.items():
                rates[kind].append(rate(forwarder, batch, args.batches))
        for forwarder in forwarders.values():
            forwarder.close()

    print(f"\nResNeXt-50 32x4d, 224x224, CPU, batch {BATCH}, one net each; {args.rounds} rounds")
    titles = {"caffe": "caffe (BatchNorm folded)", "onnxruntime": "onnxruntime (exported)",
              "torch": "torch (exported)"}
    for kind in BACKENDS:
        shown = "  ".join(f"{value:6.2f}" for value in rates[kind])
        print(f"  {titles[kind]:<28} {shown}  img/s")
    for kind in BACKENDS[1:]:
        ratios = [ours / caffe for ours, caffe in zip(rates[kind], rates["caffe"])]
        shown = "  ".join(f"{value:6.2f}" for value in ratios)
        print(f"  {kind + ' / caffe':<28} {shown}  median {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
