"""Find pycaffe and describe it: where it is, which version, GPU support, pooling dialect.

Where Caffe comes from, in order:
- `ARCHC_CAFFE_ROOT`: the `python/` directory of a pycaffe build (the directory that contains the
  `caffe` package), e.g. a user's own CUDA build. It is put first on `sys.path`.
- otherwise whatever `import caffe` finds; `make caffe` (scripts/build-caffe.sh) installs a CPU_ONLY
  build into a cache outside the repo and points the virtualenv at it with a .pth file.

Importing caffe is slow (scipy, scikit-image) and loads native code that aborts the process on
fatal errors, so it happens only when a command needs Caffe, once per process.
"""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from archc.errors import ArchError

ROOT_ENV = "ARCHC_CAFFE_ROOT"
FIX_COMMAND = "make caffe"

#: pooling rounding spelling of the installed schema: "round_mode" (BVLC master), "ceil_mode"
#: (OpenCV and forks), or "ceil_only" (old schemas with neither field: floor cannot be expressed)
POOL_DIALECTS = ("round_mode", "ceil_mode", "ceil_only")


class CaffeError(ArchError):
    """A user-facing problem with the Caffe installation or with what it is asked to run."""


class CaffeNotFound(CaffeError):
    pass


@dataclass(frozen=True)
class CaffeInfo:
    path: str            # the directory of the imported `caffe` package
    version: str         # pycaffe's __version__, plus the build's provenance when archc built it
    gpu: bool            # built with CUDA (False for CPU_ONLY builds)
    pool_dialect: str    # one of POOL_DIALECTS
    from_env: bool       # found through ARCHC_CAFFE_ROOT


def _silence_glog() -> None:
    # Caffe logs every layer it sets up to stderr; keep warnings and errors only, unless the user
    # asked for something else. glog reads this when libcaffe is loaded, so it must come first.
    os.environ.setdefault("GLOG_minloglevel", "2")


@lru_cache(maxsize=1)
def import_caffe() -> ModuleType:
    """The `caffe` module, honouring ARCHC_CAFFE_ROOT; CaffeNotFound says how to get one."""
    root = os.environ.get(ROOT_ENV)
    if root:
        if not (Path(root) / "caffe" / "__init__.py").is_file():
            raise CaffeNotFound(f"{ROOT_ENV}={root} does not contain a caffe package "
                                f"(expected {Path(root) / 'caffe' / '__init__.py'}); point it at the "
                                f"python/ directory of your pycaffe build")
        if root not in sys.path:
            sys.path.insert(0, root)
    _silence_glog()
    try:
        caffe = importlib.import_module("caffe")
    except Exception as error:  # noqa: BLE001 - a broken build fails in any way while importing
        where = f" from {ROOT_ENV}={root}" if root else ""
        kind = "" if isinstance(error, ImportError) else f"{type(error).__name__}: "
        raise CaffeNotFound(f"cannot import pycaffe{where}: {kind}{error}. Run `{FIX_COMMAND}` to "
                            f"build a CPU-only Caffe, or set {ROOT_ENV} to your own build's "
                            f"python/ directory") from None
    if root and not Path(caffe.__file__).resolve().is_relative_to(Path(root).resolve()):
        raise CaffeNotFound(f"{ROOT_ENV}={root} is set, but caffe was already imported from "
                            f"{Path(caffe.__file__).parent}")
    return caffe


def pool_dialect_of(pooling_parameter_descriptor) -> str:
    """Which spelling of pooling rounding a PoolingParameter descriptor (field 13) has."""
    fields = pooling_parameter_descriptor.fields_by_name
    if "round_mode" in fields:
        return "round_mode"
    if "ceil_mode" in fields:
        return "ceil_mode"
    return "ceil_only"


def _linked_with_cuda() -> bool:
    """Whether the process mapped CUDA's libraries along with Caffe's.

    A CPU_ONLY pycaffe still has set_mode_gpu/set_device, and calling them aborts the process, so
    GPU support is read from what the dynamic loader brought in: a CUDA build of Caffe always links
    cuBLAS and cuRAND as shared libraries (cudart may be static)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return "/libcublas" in maps or "/libcurand" in maps


def _version(caffe: ModuleType) -> str:
    version = str(getattr(caffe, "__version__", "unknown"))
    # scripts/build-caffe.sh records the Debian source version it built next to python/.
    build_info = Path(caffe.__file__).resolve().parent.parent.parent / "BUILD-INFO"
    if build_info.is_file():
        fields = dict(line.split("=", 1) for line in build_info.read_text().splitlines() if "=" in line)
        if "caffe_deb_version" in fields:
            version += f" (Debian source {fields['caffe_deb_version']}, built by archc)"
    return version


@lru_cache(maxsize=1)
def caffe_info() -> CaffeInfo:
    caffe = import_caffe()
    from caffe.proto import caffe_pb2
    return CaffeInfo(path=str(Path(caffe.__file__).resolve().parent),
                     version=_version(caffe),
                     gpu=_linked_with_cuda(),
                     pool_dialect=pool_dialect_of(caffe_pb2.PoolingParameter.DESCRIPTOR),
                     from_env=bool(os.environ.get(ROOT_ENV)))


def caffe_pb2() -> ModuleType:
    """The installed Caffe's own generated schema module."""
    import_caffe()
    from caffe.proto import caffe_pb2 as module
    return module


_GLOG_FATAL = re.compile(r"^F\d{4,8} [\d:.]+\s+\d+ [^\]]*\] (.*)$", re.MULTILINE)
# A fixed program (no user text is executed): select a GPU, which Caffe aborts on if it cannot.
_DEVICE_PROBE = ("import sys\n"
                 "from archc.runtime.caffe_env import import_caffe\n"
                 "caffe = import_caffe()\n"
                 "caffe.set_device(int(sys.argv[1]))\n"
                 "caffe.set_mode_gpu()\n")


def run_in_child(program: str, *args: str) -> subprocess.CompletedProcess:
    """A fixed Python program run in a child process with full Caffe logging, so that a Caffe
    abort there can be an error message here."""
    # The same interpreter and environment find archc where this process found it.
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True,
                          env={**os.environ, "GLOG_minloglevel": "0"})


def fatal_message(stderr: str) -> str:
    """What a Caffe that aborted said last: its fatal log line, else its last line."""
    fatal = _GLOG_FATAL.findall(stderr)
    return fatal[0].strip() if fatal else (stderr.strip().splitlines() or ["(no message)"])[-1]


def check_device(gpu: int) -> None:
    """Select GPU `gpu` in a child process first: Caffe aborts on a device it cannot use."""
    result = run_in_child(_DEVICE_PROBE, str(gpu))
    if result.returncode != 0:
        raise CaffeError(f"--gpu {gpu}: Caffe cannot use that device: {fatal_message(result.stderr)}")


def use_device(gpu: int | None) -> None:
    """CPU mode, or GPU `gpu`; refuses, before Caffe can abort, when the build has no CUDA or
    cannot use that device."""
    caffe = import_caffe()
    if gpu is None:
        caffe.set_mode_cpu()
        return
    info = caffe_info()
    if not info.gpu:
        raise CaffeError(f"--gpu {gpu}: the Caffe at {info.path} was built without GPU support "
                         f"(CPU_ONLY). Set {ROOT_ENV} to the python/ directory of a CUDA build of "
                         f"pycaffe, or drop --gpu to run on the CPU")
    if gpu < 0:
        raise CaffeError(f"--gpu {gpu}: a device number is 0 or more")
    check_device(gpu)
    caffe.set_device(gpu)
    caffe.set_mode_gpu()
