"""Shared fixtures. Several people edit this file: keep additions small and self-contained."""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail the test, rather than hang it, when the block takes longer (a read blocked on a FIFO)."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def reference_root() -> Path:
    """The published reference files ($ARCHC_REFERENCE_DIR, default ../shared/reference)."""
    return Path(os.environ.get("ARCHC_REFERENCE_DIR", REPO.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_cls() -> Path:
    """The reference classification prototxts; tests using them skip, visibly, where they are absent."""
    path = reference_root() / "cls"
    if not path.is_dir():
        pytest.skip(f"reference files not found at {path} (set ARCHC_REFERENCE_DIR)")
    return path


@pytest.fixture(scope="session")
def caffe():
    """Real pycaffe. Skips, visibly, where it is absent; with ARCHC_REQUIRE_CAFFE=1 (CI) it fails."""
    from archc.runtime.caffe_env import CaffeNotFound, import_caffe
    try:
        return import_caffe()
    except CaffeNotFound as error:
        if os.environ.get("ARCHC_REQUIRE_CAFFE") == "1":
            pytest.fail(f"ARCHC_REQUIRE_CAFFE=1 but Caffe is missing: {error}")
        pytest.skip(f"Caffe not installed (run `make caffe`): {error}")


@pytest.fixture(scope="module")
def caffe_child(caffe):
    """Real Caffe in a long-lived child process (tests/caffe_child.py), one per test module."""
    from caffe_child import CaffeChild
    with CaffeChild() as child:
        yield child


@pytest.fixture(scope="session")
def eval_dataset(tmp_path_factory):
    """A tiny net and images whose `archc eval` answers are known by construction (evalkit.py)."""
    import evalkit
    directory = tmp_path_factory.mktemp("eval")
    evalkit.write_tiny_net(directory)
    evalkit.write_dataset(directory)
    return directory


def _extra_package(name: str, extra: str):
    """An optional extra's package. Skips, visibly, where it is absent; with
    ARCHC_REQUIRE_CAFFE=1 (CI, which installs the test extra) it fails, so CI cannot skip them."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError as error:
        if os.environ.get("ARCHC_REQUIRE_CAFFE") == "1":
            pytest.fail(f"ARCHC_REQUIRE_CAFFE=1 but {name} (archc[{extra}]) is missing: {error}")
        pytest.skip(f"{name} not installed (pip install 'archc[{extra}]'): {error}")


@pytest.fixture(scope="session")
def onnxruntime():
    """ONNX Runtime (and onnx), as the `caffe` fixture: a skip, or under ARCHC_REQUIRE_CAFFE=1 a failure."""
    _extra_package("onnx", "onnx")
    return _extra_package("onnxruntime", "onnx")


@pytest.fixture(scope="session")
def torch():
    """PyTorch (and safetensors), as the `caffe` fixture: a skip, or under ARCHC_REQUIRE_CAFFE=1 a failure."""
    _extra_package("safetensors", "torch")
    return _extra_package("torch", "torch")
