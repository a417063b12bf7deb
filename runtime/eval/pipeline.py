"""Parallel image loading: decode and preprocess in worker processes, hand results back in order.

Processes, not threads: a forward pass in pycaffe holds the GIL. Workers are spawned (not forked)
so they never inherit Caffe's or OpenBLAS's threads, and each keeps OpenCV single-threaded since the
parallelism is across images. At most `depth` images are in flight, so memory stays bounded on a
50,000-image list while the network never waits for input. Each worker loads OpenCV with its pixel
limit set to the run's (`ImageLimits`).
"""
from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import cv2
import numpy as np

from archc.runtime.eval.crops import Preprocess
from archc.runtime.eval.errors import EvalError
from archc.runtime.eval.images import ImageLimits, Unusable, decode, read_bytes
from archc.runtime.processes import exit_with_parent, start_worker


@dataclass(frozen=True)
class Loaded:
    index: int
    crops: np.ndarray | None       # N x 3 x crop x crop float32, None when skipped
    problem: str | None            # why it was skipped
    notes: tuple[str, ...] = ()    # oddities of a usable image (grayscale, cmyk, ...)


def load_image(index: int, path: str, preprocess: Preprocess, limits: ImageLimits) -> Loaded:
    try:
        image, notes = decode(read_bytes(path, limits), limits)
        return Loaded(index, preprocess(image), None, notes)
    except Unusable as reason:
        return Loaded(index, None, str(reason))
    except cv2.error as error:  # a decoder failing inside OpenCV on a hostile file
        return Loaded(index, None, f"decoder error: {str(error).strip().splitlines()[-1]}")


def _quiet_decoder() -> None:
    # Problem files are reported in the results; OpenCV's own warnings would only garble the bar.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _init_worker() -> None:
    cv2.setNumThreads(1)
    _quiet_decoder()
    # Ctrl-C is the main process's to handle; workers end when it shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()


def load_in_order(tasks: Iterable[tuple[int, str]], preprocess: Preprocess, limits: ImageLimits,
                  workers: int, depth: int) -> Iterator[Loaded]:
    """`load_image` over (index, path) tasks, in task order; `workers=0` loads in this process,
    whose OpenCV was loaded before the pixel limit was known: an image over it in a format other
    than JPEG or PNG is refused there only once decoded."""
    if workers == 0:
        _quiet_decoder()
        for index, path in tasks:
            yield load_image(index, path, preprocess, limits)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker,
                               initargs=(limits.opencv_environment(), f"{__name__}:_init_worker"))
    try:
        remaining = iter(tasks)
        pending: deque[Future] = deque()

        def submit_next() -> None:
            task = next(remaining, None)
            if task is not None:
                pending.append(pool.submit(load_image, *task, preprocess, limits))

        try:
            for _ in range(max(1, depth)):
                submit_next()
            while pending:
                future = pending.popleft()
                submit_next()
                yield future.result()
        except BrokenProcessPool:  # from a result, or from submitting to the broken pool
            raise EvalError("an image-loading worker process died (out of memory?); results so "
                            "far are kept: rerun the same command to resume") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
