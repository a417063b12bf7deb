"""scripts/build-caffe.sh: a second run is a cache hit that takes seconds; mistakes are explained."""
from __future__ import annotations

import os
import re
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


FAKE_TOOLS = {
    # apt-get: `source` unpacks a tree with the one line the script patches; the rest succeeds
    "apt-get": """#!/bin/sh
case " $* " in
  *" source "*) mkdir -p caffe-fake/src/caffe/util
                echo 'SetTotalBytesLimit(kProtoReadBytesLimit, 536870912);' > caffe-fake/src/caffe/util/io.cpp ;;
esac
""",
    "cmake": "#!/bin/sh\necho '-- Configuring done'\n",
    # make: two steps of progress, then a compile error
    "make": """#!/bin/sh
printf '[  3%%] Building CXX object src/caffe/CMakeFiles/caffe.dir/blob.cpp.o\\n'
printf '[ 50%%] Building CXX object src/caffe/CMakeFiles/caffe.dir/net.cpp.o\\n'
printf '[ 50%%] Building CXX object src/caffe/CMakeFiles/caffe.dir/solver.cpp.o\\n'
printf 'net.cpp:1:1: error: simulated compile failure\\n'
exit 2
""",
}


@pytest.mark.skipif(os.geteuid() != 0, reason="the build installs packages as root; sudo would "
                                              "not run the fake apt-get")
def test_a_failed_build_shows_its_progress_and_keeps_its_log(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, text in FAKE_TOOLS.items():
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    cache = tmp_path / "cache"
    result = subprocess.run([str(SCRIPT), sys.executable], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}",
                                 "ARCHC_CACHE_DIR": str(cache)})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    progress = [line.split(" (")[0] for line in lines if line.startswith("build-caffe: compiling: ")]
    assert progress == ["build-caffe: compiling: 3%", "build-caffe: compiling: 50%"]
    assert "net.cpp:1:1: error: simulated compile failure" in result.stderr
    kept = re.search(r"error: compiling caffe failed \(.*all of it is kept in (\S+)\)$", lines[-1])
    assert kept, lines[-1]
    log = Path(kept[1])
    assert log.parent == cache / "caffe" and "-- Configuring done" in log.read_text()
    assert "[ 50%] Building CXX object" in log.read_text()
    # the work directory is gone, and nothing was cached
    assert sorted(path.name for path in (cache / "caffe").iterdir()) == [".lock", log.name]
