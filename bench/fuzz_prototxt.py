"""Soak "no Caffe abort from any prototxt archc accepted" with N mutated prototxts (default 20,000).

    python bench/fuzz_prototxt.py [N] [--seed S] [--workers 2] [--crashes DIR]

Each case mutates a one-layer seed net (tests/protofuzz.py) and goes through the loader of
`archc time` and `eval` into real Caffe, in worker processes. A case whose worker dies is an abort
archc should have refused; one that raises anything but a message is an internal error: both are
saved under DIR (default bench/fuzz-crashes/prototxt/). Prints the counts; exit status 1 if any.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

import protofuzz  # noqa: E402  (needs the path above)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--crashes", type=Path, default=REPO / "bench" / "fuzz-crashes" / "prototxt")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seeds = protofuzz.seeds()
    started = time.perf_counter()
    cases = [(index, protofuzz.mutate(rng, rng.choice(seeds))) for index in range(args.count)]
    workers = protofuzz.CaffeWorkers(args.workers)
    try:
        verdicts = workers.run(cases)
    finally:
        workers.close()
    texts = dict(cases)
    tally = Counter(v.outcome if v.outcome in ("ran", "refused", "aborted") else "internal error"
                    for v in verdicts)
    for verdict in verdicts:
        if verdict.outcome == "aborted":
            _save(args.crashes / f"abort-{args.seed}-{verdict.index}.prototxt", texts[verdict.index])
        elif verdict.outcome not in ("ran", "refused"):
            _save(args.crashes / f"internal-{args.seed}-{verdict.index}.prototxt",
                  texts[verdict.index] + "\n# " + verdict.outcome.replace("\n", "\n# "))
    print(f"{args.count} mutated prototxts in {time.perf_counter() - started:.0f} s: "
          f"{tally['ran']} loaded and ran in Caffe, {tally['refused']} refused with a message, "
          f"{tally['aborted']} aborted Caffe, {tally['internal error']} internal errors")
    return 1 if tally["aborted"] or tally["internal error"] else 0


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
