"""What archc's runtime finds on this machine, and the command that fixes what is missing."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

from archc.runtime import caffe_env

OPENCV_FIX = "make setup  (or: pip install 'opencv-python-headless<5')"


@dataclass
class Check:
    name: str
    ok: bool
    details: list[str] = field(default_factory=list)
    fix: str | None = None       # the command that repairs it, when not ok


def check_caffe() -> Check:
    try:
        info = caffe_env.caffe_info()
    except caffe_env.CaffeError as error:
        root = os.environ.get(caffe_env.ROOT_ENV)
        fix = (f"fix {caffe_env.ROOT_ENV} (now {root}) or unset it and run `{caffe_env.FIX_COMMAND}`"
               if root else f"{caffe_env.FIX_COMMAND}   (builds a CPU-only pycaffe, ~3-6 minutes; "
                            f"GPU: set {caffe_env.ROOT_ENV} to your CUDA build's python/ dir)")
        return Check("Caffe", False, [str(error)], fix)
    floor = {"round_mode": "floor written as round_mode: FLOOR",
             "ceil_mode": "floor written as ceil_mode: false",
             "ceil_only": "no floor rounding: nets that need it are refused"}[info.pool_dialect]
    origin = f" (from {caffe_env.ROOT_ENV})" if info.from_env else ""
    return Check("Caffe", True, [
        f"path     {info.path}{origin}",
        f"version  {info.version}",
        f"device   {'CPU and GPU (CUDA build): --gpu N works' if info.gpu else 'CPU only (built CPU_ONLY): --gpu is refused'}",
        f"pooling  {info.pool_dialect} dialect ({floor})",
    ])


def check_opencv() -> Check:
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError as error:
        return Check("OpenCV", False, [f"cannot import cv2: {error}"], OPENCV_FIX)
    has_importer = hasattr(getattr(cv2, "dnn", None), "readNetFromCaffe")
    details = [f"version  {cv2.__version__}",
               f"caffe    cv2.dnn.readNetFromCaffe {'available' if has_importer else 'MISSING'}"]
    if not has_importer:
        return Check("OpenCV", False, details, OPENCV_FIX + "  (OpenCV 5 dropped the Caffe importer)")
    return Check("OpenCV", True, details)


def run_checks() -> list[Check]:
    return [check_caffe(), check_opencv()]


def format_checks(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{check.name}: {'ok' if check.ok else 'MISSING'}")
        lines.extend(f"  {detail}" for detail in check.details)
    missing = [check for check in checks if not check.ok]
    if missing:
        lines.append("")
        lines.append("to fix:")
        lines.extend(f"  {check.name}: {check.fix}" for check in missing)
    else:
        lines.append("")
        lines.append("nothing missing: archc eval/time/weights can use Caffe and OpenCV")
    return "\n".join(lines)
