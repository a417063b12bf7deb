"""Soak archc's fuzzers outside pytest: N inputs for each (default 100,000).

    python bench/fuzz_soak.py [N] [--fuzzers compiler,weights,evalfiles,prototxt] [--workers 2]
                              [--seed S] [--crashes DIR]

- compiler: generated and mutated .arch inputs compiled in-process (tests/archfuzz.py);
- weights: caffemodels mutated field by field under `archc weights` and `--check`, and loaded into
  real Caffe where archc calls them a fit, in one long-lived Caffe child per worker, restarted
  only after a death, which fails its case (tests/weightsfuzz.py, tests/caffe_child.py); without
  Caffe, the archc side alone, said so;
- evalfiles: val lists, journals and results files mutated under `archc eval` (tests/evalfuzz.py);
- prototxt: one-layer nets mutated field by field through the checks `archc time` and `eval` make
  before Caffe sees a net, and what they accept set up and run forward in the Caffe child
  (tests/protofuzz.py); it needs Caffe.

Every input that breaks its fuzzer's property is saved under DIR (default bench/fuzz-crashes/) as a
folder with its files, its command line and what went wrong. Prints the counts, the exit statuses,
the failures and the throughput; exit status 1 if anything broke.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import archfuzz  # noqa: E402  (needs the paths above)
import evalfuzz  # noqa: E402
import protofuzz  # noqa: E402
import weightsfuzz  # noqa: E402
from caffe_child import CaffeChild  # noqa: E402

MEMORY_LIMIT = 2 * 1024 ** 3
CHUNK = 500


class CompilerFuzzer:
    deadline_s = 20.0

    def __init__(self, scratch: Path, caffe: bool):
        self.workspace = archfuzz.Workspace(scratch / "ws")

    def one(self, rng: random.Random) -> tuple[archfuzz.Case, archfuzz.Outcome]:
        case = archfuzz.random_case(rng, self.workspace)
        return case, archfuzz.run_case(case, self.workspace, self.deadline_s)

    def close(self) -> None:
        pass


class WeightsFuzzer:
    deadline_s = 10.0

    def __init__(self, scratch: Path, caffe: bool):
        self.scratch, self.caffe = scratch, CaffeChild() if caffe else None

    def one(self, rng: random.Random) -> tuple[archfuzz.Case, archfuzz.Outcome]:
        case = weightsfuzz.random_case(rng)
        return case, weightsfuzz.run_case(case, self.scratch, self.caffe, self.deadline_s)

    def close(self) -> None:
        if self.caffe is not None:
            self.caffe.close()


class EvalFilesFuzzer:
    deadline_s = 10.0

    def __init__(self, scratch: Path, caffe: bool):
        self.dataset = evalfuzz.Dataset(scratch / "eval")

    def one(self, rng: random.Random) -> tuple[archfuzz.Case, archfuzz.Outcome]:
        case = evalfuzz.random_case(rng, self.dataset)
        return case, evalfuzz.run_case(case, self.dataset, self.deadline_s)

    def close(self) -> None:
        pass


class PrototxtFuzzer(WeightsFuzzer):
    deadline_s = 20.0

    def one(self, rng: random.Random) -> tuple[archfuzz.Case, archfuzz.Outcome]:
        case = protofuzz.random_case(rng)
        return case, protofuzz.run_case(case, self.scratch, self.caffe, self.deadline_s)


FUZZERS = {"compiler": CompilerFuzzer, "weights": WeightsFuzzer, "evalfiles": EvalFilesFuzzer,
           "prototxt": PrototxtFuzzer}


def _work(job: tuple[str, int, int, bool, str]) -> tuple[str, int, Counter, list[dict]]:
    """Run `count` inputs of one fuzzer from `seed`; returns (fuzzer, count, outcome tally,
    failures)."""
    name, seed, count, caffe, crash_dir = job
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))  # its Caffe child's too
    rng = random.Random(seed)
    tally: Counter = Counter()
    failures = []
    with tempfile.TemporaryDirectory(prefix=f"archc-soak-{name}-") as scratch:
        fuzzer = FUZZERS[name](Path(scratch), caffe)
        try:
            for index in range(count):
                case, outcome = fuzzer.one(rng)
                tally[f"{case.origin.split()[0].rstrip(':')}: exit {outcome.code}"] += 1
                if outcome.problem:
                    failures.append(_save(case, outcome, Path(crash_dir) / f"{name}-s{seed}-{index}"))
        finally:
            fuzzer.close()
    return name, count, tally, failures


def _save(case: archfuzz.Case, outcome: archfuzz.Outcome, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in case.files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes)
                         else content.encode("utf-8", "surrogatepass"))
    report = {"model": case.model, "args": case.args, "origin": case.origin,
              "exit": outcome.code, "problem": outcome.problem, "stderr": outcome.stderr[-4000:]}
    (folder / "case.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return {"folder": str(folder), **report}


def _caffe_missing() -> str | None:
    from archc.runtime.caffe_env import CaffeNotFound, import_caffe
    try:
        import_caffe()
    except CaffeNotFound as error:
        return str(error)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=100_000, help="inputs per fuzzer")
    parser.add_argument("--fuzzers", default=",".join(FUZZERS),
                        help=f"comma-separated, of {', '.join(FUZZERS)} (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--crashes", default=str(REPO / "bench" / "fuzz-crashes"))
    options = parser.parse_args()
    names = options.fuzzers.split(",")
    if unknown := set(names) - set(FUZZERS):
        parser.error(f"unknown fuzzers: {', '.join(sorted(unknown))}")
    needs_caffe = bool({"weights", "prototxt"} & set(names))
    missing = _caffe_missing() if needs_caffe else None
    if missing and "prototxt" in names:
        parser.error(f"the prototxt fuzzer needs Caffe: {missing}")
    if missing:
        print(f"weights: no Caffe ({missing}); fits are not loaded into Caffe", flush=True)
    caffe = needs_caffe and missing is None
    jobs = [(name, options.seed * 100_003 + number * 7_919 + start, min(CHUNK, options.count - start),
             caffe, options.crashes)
            for start in range(0, options.count, CHUNK) for number, name in enumerate(names)]
    started = time.monotonic()
    done, tallies, failures = Counter(), {name: Counter() for name in names}, []
    # Spawned, not forked: the eval-file fuzzer runs OpenCV in the workers. A worker that dies
    # (killed, out of memory) breaks the pool, which ends the soak as a failure, not a hang.
    with ProcessPoolExecutor(options.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            for future in as_completed([pool.submit(_work, job) for job in jobs]):
                name, count, part, broken = future.result()
                previous = sum(done.values())
                done[name] += count
                tallies[name].update(part)
                failures += broken
                if sum(done.values()) // 10_000 > previous // 10_000:
                    rate = sum(done.values()) / (time.monotonic() - started)
                    print(f"{dict(done)} inputs, {len(failures)} failing, {rate:.0f}/s", flush=True)
        except (BrokenProcessPool, MemoryError) as error:
            failures.append({"folder": "(none)", "problem": f"a soak worker died: {error!r}"})
            pool.shutdown(cancel_futures=True)
    elapsed = time.monotonic() - started
    print(f"\n{sum(done.values())} inputs in {elapsed:.0f} s ({sum(done.values()) / elapsed:.0f} "
          f"inputs/s, {options.workers} workers, seed {options.seed})")
    for name in names:
        print(f"{name}: {done[name]} inputs")
        for key, value in sorted(tallies[name].items()):
            print(f"  {key:<28} {value}")
    print(f"failing inputs: {len(failures)}" + (f" (saved under {options.crashes})" if failures else ""))
    for failure in failures[:20]:
        print(f"  {failure['folder']}: {failure['problem'].splitlines()[0]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
