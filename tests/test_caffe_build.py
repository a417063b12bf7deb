"""scripts/build-caffe.sh: a second run is a cache hit that takes seconds; mistakes are explained."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "build-caffe.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_cached_build_is_reused_in_seconds(caffe):
    if os.environ.get("ARCHC_CAFFE_ROOT"):
        pytest.skip("Caffe comes from ARCHC_CAFFE_ROOT, not from the project's build")
    cache = Path(caffe.__file__).resolve().parent.parent.parent
    if not (cache / "BUILD-INFO").is_file():
        pytest.skip(f"this Caffe ({caffe.__file__}) was not installed by scripts/build-caffe.sh")
    started = time.monotonic()
    result = run_script(sys.executable)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "build-caffe: cache hit: " in result.stderr
    assert f"imports caffe from {Path(caffe.__file__).parent}" in result.stderr
    assert elapsed < 30


def test_usage_and_an_unusable_python_are_explained(tmp_path):
    result = run_script()
    assert result.returncode == 1 and "usage: " in result.stderr
    no_numpy = tmp_path / "python"
    no_numpy.write_text("#!/bin/sh\nexit 1\n")
    no_numpy.chmod(0o755)
    result = run_script(str(no_numpy))
    assert result.returncode == 1
    assert "is not a Python with numpy; run 'make setup' first" in result.stderr
