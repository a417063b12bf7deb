"""Soak the compiler with N generated and mutated inputs (default 100,000) outside pytest.

    python bench/fuzz_soak.py [N] [--workers 2] [--seed S] [--crashes DIR]

Each input runs in-process through `archc.cli.main` under a deadline (see tests/archfuzz.py for
the inputs and the property). Every input that breaks the property is saved under DIR
(default bench/fuzz-crashes/) as a folder with its files, its command line and what went wrong.
Prints the count, the crashes and the throughput; exit status 1 if anything broke.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import archfuzz  # noqa: E402  (needs the paths above)

DEADLINE_S = 20.0
MEMORY_LIMIT = 2 * 1024 ** 3


def _work(job: tuple[int, int, int, str]) -> tuple[int, Counter, list[dict]]:
    """Run `count` inputs from `seed`; returns (count, outcome tally, failures)."""
    seed, count, worker, crash_dir = job
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    rng = random.Random(seed)
    tally: Counter = Counter()
    failures = []
    with tempfile.TemporaryDirectory(prefix=f"archc-soak{worker}-") as scratch:
        workspace = archfuzz.Workspace(Path(scratch) / "ws")
        for index in range(count):
            case = archfuzz.random_case(rng, workspace)
            outcome = archfuzz.run_case(case, workspace, DEADLINE_S)
            tally[f"{case.origin.split()[0]}: exit {outcome.code}"] += 1
            if outcome.problem:
                failures.append(_save(case, outcome, Path(crash_dir) / f"s{seed}-{index}"))
    return count, tally, failures


def _save(case: archfuzz.Case, outcome: archfuzz.Outcome, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in case.files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    report = {"model": case.model, "args": case.args, "origin": case.origin,
              "exit": outcome.code, "problem": outcome.problem, "stderr": outcome.stderr[-4000:]}
    (folder / "case.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return {"folder": str(folder), **report}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--crashes", default=str(REPO / "bench" / "fuzz-crashes"))
    options = parser.parse_args()
    chunk = 500
    jobs = [(options.seed * 100_003 + start, min(chunk, options.count - start), start // chunk,
             options.crashes) for start in range(0, options.count, chunk)]
    started = time.monotonic()
    done, tally, failures = 0, Counter(), []
    with multiprocessing.Pool(options.workers) as pool:
        for count, part, broken in pool.imap_unordered(_work, jobs):
            done += count
            tally.update(part)
            failures += broken
            if done % 10_000 < chunk:
                rate = done / (time.monotonic() - started)
                print(f"{done} inputs, {len(failures)} failing, {rate:.0f}/s", flush=True)
    elapsed = time.monotonic() - started
    print(f"\n{done} inputs in {elapsed:.0f} s ({done / elapsed:.0f} inputs/s, "
          f"{options.workers} workers, seed {options.seed})")
    for key, value in sorted(tally.items()):
        print(f"  {key:<28} {value}")
    print(f"failing inputs: {len(failures)}" + (f" (saved under {options.crashes})" if failures else ""))
    for failure in failures[:20]:
        print(f"  {failure['folder']}: {failure['problem'].splitlines()[0]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
