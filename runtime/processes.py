"""Worker processes that do not outlive the run that started them.

`archc eval` keeps image-loading and forward processes (each forward one holding a whole net).
Ctrl-C, SIGTERM and SIGHUP reach the main process, which shuts them down; a main process killed
outright (SIGKILL, the out-of-memory killer) cannot, so each worker asks the kernel to kill it
when its parent dies.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import sys
from collections.abc import Iterator

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def exit_with_parent() -> None:
    """In a worker: be killed when the parent process dies (Linux; elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request was in place
        os._exit(1)


def start_worker(environment: dict[str, str], initializer: str) -> None:
    """A process pool's initializer: set `environment` before the worker loads what reads it only
    then (OpenCV its decoding limits), then call `initializer`. That is named, "module:function",
    because a function passed itself would be unpickled, its module imported, before this runs."""
    os.environ.update(environment)
    module, _, name = initializer.partition(":")
    getattr(importlib.import_module(module), name)()


@contextlib.contextmanager
def termination_interrupts() -> Iterator[None]:
    """In the main process, while the block runs: SIGTERM and SIGHUP stop the run as Ctrl-C does
    (workers shut down, finished results kept)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
