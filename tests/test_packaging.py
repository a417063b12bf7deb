"""archc installs as one `archc` package, and a normal install works next to a user's own modules.

A wheel built with `pip wheel .` holds only `archc` at the top level, with the grammar, the
template and the model library inside it. Installed from that wheel (not editable), every
command runs from a directory holding decoy `ir.py`, `dsl.py`, `runtime.py`, `codegen.py` and
`analysis.py` that fail when imported.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

DECOYS = ("ir", "dsl", "runtime", "codegen", "analysis", "cli", "model")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                   check=True, capture_output=True)
    [built] = out.glob("archc-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A directory with the wheel installed in it (a normal, non-editable install)."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    return site


def test_the_wheel_holds_only_archc_at_the_top(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"archc", wheel.name.split("-py")[0] + ".dist-info"}
    for data in ("archc/dsl/grammar.lark", "archc/codegen/templates/deploy.prototxt.j2",
                 "archc/archs/resnext.arch", "archc/archs/lib/common.arch"):
        assert data in names


@pytest.fixture
def decoy_dir(tmp_path) -> Path:
    for name in DECOYS:
        (tmp_path / f"{name}.py").write_text(f"raise SystemExit('the decoy {name}.py was imported')\n")
    return tmp_path


def run_installed(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # `python -m archc` puts the working directory first on sys.path, where the decoys are.
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([sys.executable, "-m", "archc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_command_runs_from_a_directory_of_decoys(installed, decoy_dir):
    library = installed / "archc" / "archs"
    model = decoy_dir / "net.prototxt"
    compiled = run_installed(installed, decoy_dir, str(library / "resnext.arch"), "--depth", "50",
                             "-o", str(model))
    assert compiled.returncode == 0, compiled.stderr
    assert model.read_text().startswith('input: "data"')
    for args in (["summary", str(model)], ["diff", str(model), str(model)],
                 ["weights", "--init", str(model), "-o", str(decoy_dir / "w.caffemodel")],
                 ["weights", str(decoy_dir / "w.caffemodel")],
                 [str(library / "densenet.arch"), "--help"], ["doctor"], ["--version"]):
        result = run_installed(installed, decoy_dir, *args)
        assert "decoy" not in result.stderr + result.stdout, (args, result.stderr)
        assert result.returncode in (0, 1), (args, result.stderr)  # doctor: 1 without OpenCV/Caffe
    # the installed archc is the one that ran, not the source tree
    where = subprocess.run([sys.executable, "-c", "import archc.ir; print(archc.ir.__file__)"],
                           cwd=decoy_dir, env={**os.environ, "PYTHONPATH": str(installed)},
                           capture_output=True, text=True)
    assert where.stdout.startswith(str(installed)), where.stdout


def test_the_console_script_runs_from_a_directory_of_decoys(decoy_dir):
    script = Path(sys.executable).with_name("archc")
    result = subprocess.run([str(script), str(REPO / "archs" / "resnet_v1.arch"), "--depth", "50"],
                            cwd=decoy_dir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'name: "res5c"' in result.stdout
