"""`archc eval --ray` throughput against the local run on the same cores, as a ratio in one run.

ResNeXt-50 32x4d (CPU, batch 8, 1 crop, filler weights written by archc) over synthetic 500x375
JPEGs, as bench/eval_throughput.py makes them. The local run is `archc eval`'s default on this
machine: one net per core (up to 4) and its image-loading processes. The Ray run starts a local
Ray instance with one worker per core, as `--ray` does, each loading its own images and running
one net. Both go through the same code as the command (`run` behind `Nets`, `RayWorkers.run`),
after their nets are loaded (loading is not throughput); each Ray round also pays for planning
and returning its shards. Rounds alternate the two and the ratio is taken within each round, so
a busy spell of a shared machine does not favour one side. Target: Ray / local >= 0.85 (an
overhead under 15%) at 256 images a round.

    .venv/bin/python bench/ray_throughput.py [--images 256] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval_throughput import BATCH, PREPROCESS, eval_run, eval_settings, make_images  # noqa: E402

from archc.cli.cmd_eval import default_nets, default_workers  # noqa: E402
from archc.model import load_model  # noqa: E402
from archc.runtime import weights  # noqa: E402
from archc.runtime.backends import BackendSpec, Forwarder  # noqa: E402
from archc.runtime.eval.cluster import LOCAL, RayOptions, RayWorkers  # noqa: E402
from archc.runtime.eval.model import at_input_size, sha256_of_file, sha256_of_text  # noqa: E402
from archc.runtime.eval.progress import Progress  # noqa: E402
from archc.runtime.eval.results import open_journal  # noqa: E402
from archc.runtime.eval.run import Job  # noqa: E402


def ray_run(workers: RayWorkers, job: Job, results: Path, spec: BackendSpec) -> float:
    """Images/s of `RayWorkers.run` over the job, its workers already started."""
    journal = open_journal(results, eval_settings(spec, 1))
    start = time.perf_counter()
    workers.run(job, journal, Progress(len(job.entries), (1, 5), "ray   "))
    return len(job.entries) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    nets, loaders = default_nets("caffe", None), default_workers()

    model = load_model(REPO / "archs" / "resnext.arch", {"depth": "50", "card": "32"})
    shaped = at_input_size(model.net, 224)
    with tempfile.TemporaryDirectory(prefix="archc-bench-ray-") as temporary:
        directory = Path(temporary)
        os.environ["ARCHC_CACHE_DIR"] = str(directory / "cache")  # the workers' copy of the weights
        weights_path = directory / "resnext50.caffemodel"
        weights.write_caffemodel(weights_path, weights.initial_weights(shaped))
        entries = make_images(directory, args.rounds * args.images)
        spec = BackendSpec("caffe", model.text, "resnext50-32x4d", str(weights_path), "prob", shaped)
        job = Job(entries, str(directory), PREPROCESS, BATCH, 5, 0)
        rates: dict[str, list[float]] = {"local": [], "ray": []}
        with RayWorkers(RayOptions(LOCAL, None, False), spec, sha256_of_text(model.text),
                        sha256_of_file(str(weights_path))) as distributed:
            distributed.start(job)
            local = Forwarder(spec, nets)
            eval_run(local, directory, entries[:2 * BATCH], loaders, directory / "warm.json",
                     eval_settings(spec, nets))  # every replica started and loaded
            # Rounds alternate the two, so a slow spell of a shared machine hits both.
            for number in range(args.rounds):
                mine = entries[number::args.rounds]
                rates["local"].append(eval_run(local, directory, mine, loaders,
                                               directory / f"local-{number}.json",
                                               eval_settings(spec, nets)))
                rates["ray"].append(ray_run(distributed, Job(mine, str(directory), PREPROCESS,
                                                             BATCH, 5, 0),
                                            directory / f"ray-{number}.json", spec))
            local.close()

    print(f"\nResNeXt-50 32x4d, 224x224, CPU, batch {BATCH}, 1 crop, {args.images} images a run, "
          f"{cores} core(s); {args.rounds} rounds")
    titles = {"local": f"local: {nets} net(s), {loaders} loading process(es)",
              "ray": f"--ray: {len(distributed.workers)} Ray worker(s), one net each"}
    for name, title in titles.items():
        shown = "  ".join(f"{rate:6.2f}" for rate in rates[name])
        print(f"  {title:<48} {shown}  img/s")
    ratios = [ray / local for ray, local in zip(rates["ray"], rates["local"])]
    shown = "  ".join(f"{ratio:6.2f}" for ratio in ratios)
    print(f"  {'--ray / local (target >= 0.85)':<48} {shown}  median {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
