"""`archc doctor`: which Caffe (path, version, CPU/GPU, pooling dialect) and which OpenCV archc
finds, and the command that fixes whatever is missing. Exit status 1 when something is missing."""
from __future__ import annotations

from archc.cli.main import reports_errors
from archc.errors import UsageError
from archc.runtime.doctor import format_checks, run_checks

USAGE = "usage: archc doctor\n\nReport the Caffe and OpenCV the runtime finds, and how to fix what is missing.\n"


@reports_errors
def main(argv: list[str]) -> int:
    if argv:
        if argv[0] in ("-h", "--help"):
            print(USAGE, end="")
            return 0
        raise UsageError(f"doctor takes no arguments, got '{argv[0]}'")
    checks = run_checks()
    print(format_checks(checks))
    return 0 if all(check.ok for check in checks) else 1
