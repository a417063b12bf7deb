"""`archc doctor` and ARCHC_CAFFE_ROOT, run in child processes (Caffe is imported once per process)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def doctor(env_root: Path | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "ARCHC_CAFFE_ROOT"}
    if env_root is not None:
        env["ARCHC_CAFFE_ROOT"] = str(env_root)
    return subprocess.run([sys.executable, "-m", "archc", "doctor"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def fake_caffe(root: Path, init: str) -> Path:
    """A stand-in pycaffe whose schema is the ceil_mode dialect (as in OpenCV and Caffe forks)."""
    (root / "caffe" / "proto").mkdir(parents=True)
    (root / "caffe" / "__init__.py").write_text(init)
    (root / "caffe" / "proto" / "__init__.py").write_text("")
    (root / "caffe" / "proto" / "caffe_pb2.py").write_text(
        "from archc.codegen.schema import message_class\n"
        "PoolingParameter = message_class('PoolingParameter', 'ceil_mode')\n")
    return root


def test_doctor_reports_the_installed_caffe(caffe):
    result = doctor(None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"path     {Path(caffe.__file__).resolve().parent}" in result.stdout
    assert "pooling  round_mode dialect" in result.stdout
    assert "readNetFromCaffe available" in result.stdout


def test_archc_caffe_root_is_honoured_and_its_dialect_read(tmp_path):
    root = fake_caffe(tmp_path, "__version__ = 'fork-1.2'\n")
    result = doctor(root)
    assert f"path     {root / 'caffe'} (from ARCHC_CAFFE_ROOT)" in result.stdout
    assert "version  fork-1.2" in result.stdout
    assert "pooling  ceil_mode dialect (floor written as ceil_mode: false)" in result.stdout
    assert "device   CPU only" in result.stdout


def test_a_broken_or_absent_caffe_says_how_to_fix_it(tmp_path):
    broken = fake_caffe(tmp_path / "broken", "raise ImportError(\"No module named 'skimage'\")\n")
    result = doctor(broken)
    assert result.returncode == 1
    assert "Caffe: MISSING" in result.stdout and "No module named 'skimage'" in result.stdout
    assert "to fix:\n  Caffe: fix ARCHC_CAFFE_ROOT" in result.stdout
    # a build against another numpy fails while importing, with no ImportError
    mismatched = fake_caffe(tmp_path / "numpy", "raise AttributeError('_ARRAY_API not found')\n")
    result = doctor(mismatched)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "AttributeError: _ARRAY_API not found" in result.stdout
    empty = doctor(tmp_path / "nowhere")
    assert empty.returncode == 1 and "does not contain a caffe package" in empty.stdout


def test_without_caffe_the_fix_is_make_caffe(monkeypatch):
    from archc.runtime import caffe_env, doctor as runtime_doctor

    def missing():
        raise caffe_env.CaffeNotFound("cannot import pycaffe: No module named 'caffe'")

    monkeypatch.delenv("ARCHC_CAFFE_ROOT", raising=False)
    monkeypatch.setattr(caffe_env, "caffe_info", missing)
    text = runtime_doctor.format_checks([runtime_doctor.check_caffe()])
    assert text.startswith("Caffe: MISSING\n  cannot import pycaffe")
    assert "to fix:\n  Caffe: make caffe" in text
