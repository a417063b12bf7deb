"""`archc doctor`: which Caffe (path, version, CPU/GPU, pooling dialect) and which OpenCV archc
finds, and the command that fixes whatever is missing. Exit status 1 when something is missing."""
from __future__ import annotations

import sys

from archc.runtime.doctor import format_checks, run_checks

USAGE = "usage: archc doctor\n\nReport the Caffe and OpenCV the runtime finds, and how to fix what is missing.\n"


def main(argv: list[str]) -> int:
    if argv:
        if argv[0] in ("-h", "--help"):
            print(USAGE, end="")
            return 0
        print(f"archc: error: doctor takes no arguments, got '{argv[0]}'", file=sys.stderr)
        return 2
    checks = run_checks()
    print(format_checks(checks))
    return 0 if all(check.ok for check in checks) else 1
