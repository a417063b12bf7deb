"""Whole-process compile time of the largest models, as a ratio to bare Python start-up.

Each command runs as a fresh process (what a user waits for), several times; the median counts.
Baselines are measured in the same run on the same machine:
- `python -c "import lark, jinja2"`: the floor for any compiler built on these libraries (issue 2);
- `python -c pass`: bare interpreter start-up (issue 3's target: under 4x).
Models whose .arch file does not exist yet are skipped with a message.

    .venv/bin/python bench/compile_speed.py [--runs N]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ARCHC = str(Path(PYTHON).parent / "archc")
TARGET_RATIO = 4.0

MODELS = [
    ("ResNeXt-101 64x4d", ["archs/resnext.arch", "--depth", "101", "--card", "64"]),
    ("ResNet-269-v2", ["archs/resnet_v2.arch", "--depth", "269"]),
    ("Inception-ResNet-v2", ["archs/inception_resnet_v2.arch"]),
]
BASELINES = [
    ("python -c 'import lark, jinja2'", [PYTHON, "-c", "import lark, jinja2"]),
    ("python -c pass", [PYTHON, "-c", "pass"]),
]


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"bench: {' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stderr.decode(errors='replace')}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median reported)")
    runs = parser.parse_args().runs
    import_floor, bare = (median_seconds(command, runs) for _, command in BASELINES)
    print(f"median of {runs} runs, {sys.platform}, {Path(PYTHON).name} {sys.version.split()[0]}")
    print(f"{BASELINES[0][0]:<34} {import_floor * 1000:7.0f} ms")
    print(f"{BASELINES[1][0]:<34} {bare * 1000:7.0f} ms")
    print(f"{'model':<34} {'time':>7}    {'/ lark+jinja2':>13} {'/ bare python':>13}")
    missed = []
    for name, args in MODELS:
        if not (REPO / args[0]).is_file():
            print(f"{name:<34} skipped: {args[0]} does not exist yet")
            continue
        seconds = median_seconds([ARCHC, *args], runs)
        ratio = seconds / bare
        if ratio >= TARGET_RATIO:
            missed.append(name)
        print(f"{name:<34} {seconds * 1000:7.0f} ms {seconds / import_floor:12.2f}x {ratio:12.2f}x")
    verdict = f"missed by {', '.join(missed)}" if missed else "met"
    print(f"target: under {TARGET_RATIO:g}x bare python start-up: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
