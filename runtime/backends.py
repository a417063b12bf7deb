"""Forward backends with one interface: a float32 N x C x H x W batch in, one output blob out.

`caffe` is the reference: real pycaffe through `runtime.loader` (rounding translation, schema and
shape checks, weights check, `--gpu`), running BatchNorm and Scale folded into the convolutions
before them unless told not to (`runtime.fold_batchnorm`). `opencv` is OpenCV's DNN module reading the same prototxt
and .caffemodel, so evaluation works before Caffe is built; both must agree. `onnxruntime` and
`torch` run the net exported by archc (`runtime.exporting`), which computes Caffe's blobs. Either one accepts
any batch size and any input size the net can take; one it cannot take is an ArchError, never an
abort. Both are given the net in the IR (`ShapedNet`), which they use for those checks.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from archc.ir import ArchError, Net, ShapedNet, infer_shapes
from archc.ir.ops import format_shape
from archc.runtime import exporting, fold_batchnorm, weights
from archc.runtime.pool_rounding import translate_rounding
from archc.runtime.processes import exit_with_parent

BACKENDS = ("caffe", "opencv", "onnxruntime", "torch")


class Backend(Protocol):
    name: str

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Scores for each image of the batch: an N x K float32 array (the blob, flattened)."""


def reshaped(net: Net, height: int, width: int) -> ShapedNet:
    """The net with its one input resized to height x width, its shapes inferred; an ArchError
    when it cannot take that size: a shape rule fails, or a layer would need weights of another
    shape than at the declared size (an InnerProduct after a fixed-size pooling, say)."""
    (name, shape), = net.inputs.items()
    declared = infer_shapes(net)
    try:
        resized = infer_shapes(replace(net, inputs={name: (shape[0], shape[1], height, width)}))
    except ArchError as error:
        raise ArchError(f"the net cannot take {height}x{width} input: {error.message}") from None
    for before, after in zip(declared.layers, resized.layers):
        if before.param_shapes != after.param_shapes:
            need = ", ".join(format_shape(s) for s in after.param_shapes)
            have = ", ".join(format_shape(s) for s in before.param_shapes)
            raise ArchError(f"the net cannot take {height}x{width} input: layer "
                            f"'{before.layer.name}' would need weights {need} instead of {have}")
    return resized


class CaffeBackend:
    name = "caffe"

    def __init__(self, text: str, source: str, weights_path: str | None, blob: str,
                 shaped: ShapedNet, *, gpu: int | None = None, allow_missing: bool = False,
                 fold: bool = True):
        from archc.runtime.loader import load_net_text
        self.net = load_net_text(text, source, weights_path, allow_missing=allow_missing, gpu=gpu).net
        folds = fold_batchnorm.plan(shaped.net) if fold else []
        if folds:
            self.net = fold_batchnorm.load_folded(self.net, shaped.net, folds, source, gpu=gpu)
        if blob not in self.net.blobs:
            raise ArchError(f"the net has no blob '{blob}' (its last one is "
                            f"'{list(self.net.blobs)[-1]}')")
        self.input, self.blob = self.net.inputs[0], blob
        self.structure = shaped.net
        self.checked_sizes: set[tuple[int, int]] = set()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        data = self.net.blobs[self.input]
        if data.data.shape != batch.shape:
            # Caffe aborts the process on a reshape its layers reject, so check new sizes first.
            if tuple(batch.shape[2:]) not in self.checked_sizes:
                reshaped(self.structure, *batch.shape[2:])
                self.checked_sizes.add(tuple(batch.shape[2:]))
            data.reshape(*batch.shape)
            self.net.reshape()
        data.data[...] = batch
        self.net.forward()
        return self.net.blobs[self.blob].data.reshape(len(batch), -1).copy()


class OpenCVBackend:
    name = "opencv"

    def __init__(self, text: str, source: str, weights_path: str | None, blob: str,
                 shaped: ShapedNet, *, allow_missing: bool = False):
        import cv2
        # OpenCV's Caffe schema spells pooling rounding as ceil_mode.
        text = translate_rounding(text, "ceil_mode", source)
        model = np.zeros(0, np.uint8)
        if weights_path is not None:
            report = weights.check(weights.expected_from_ir(shaped), weights_path,
                                   allow_missing=allow_missing)
            if report.missing:  # Caffe would keep fillers; OpenCV fails inside the forward pass
                raise ArchError(f"the OpenCV backend cannot run layers without weights "
                                f"({', '.join(report.missing)}): use --backend caffe")
            model = np.fromfile(weights_path, dtype=np.uint8)
        try:
            self.net = cv2.dnn.readNetFromCaffe(np.frombuffer(text.encode(), np.uint8), model)
        except cv2.error as error:
            raise ArchError(f"OpenCV cannot load {source}: {_cv_message(error)}") from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        # OpenCV names outputs by layer: the blob's value is the output of the last layer writing it
        # (an in-place ReLU after a convolution, say).
        producers = [entry.layer.name for entry in shaped.layers if blob in entry.layer.tops]
        if not producers:
            raise ArchError(f"the net has no blob '{blob}'")
        self.output = producers[-1]

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import cv2
        self.net.setInput(batch)
        try:
            output = self.net.forward(self.output)
        except cv2.error as error:
            raise ArchError(f"OpenCV forward failed: {_cv_message(error)}") from None
        return output.reshape(len(batch), -1).copy()


class ExportedBackend:
    """`onnxruntime` or `torch`: the net exported with its weights and run in this process (torch
    on CUDA device `gpu` if given). An input size is exported when first fed, since exported
    models have fixed spatial sizes (the batch is free)."""

    def __init__(self, kind: str, weights_path: str | None, blob: str, shaped: ShapedNet, *,
                 gpu: int | None = None):
        if blob not in shaped.blobs:
            raise ArchError(f"the net has no blob '{blob}'")
        self.name, self.blob, self.gpu = kind, blob, gpu
        self.structure = shaped.net
        self.parameters = exporting.parameters_of(shaped, weights_path)
        self.runs: dict[tuple[int, int], object] = {}
        self._run_at(*shaped.blobs[next(iter(shaped.net.inputs))][2:])  # export problems now

    def _run_at(self, height: int, width: int):
        if (height, width) not in self.runs:
            prepared = exporting.Prepared(reshaped(self.structure, height, width), self.parameters)
            if self.name == "onnxruntime":
                # a replica process is given its share of the cores in OMP_NUM_THREADS
                threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
                self.runs[(height, width)] = exporting.OnnxRuntimeRun(prepared, [self.blob], threads)
            else:
                self.runs[(height, width)] = exporting.TorchRun(prepared, [self.blob], self.gpu)
        return self.runs[(height, width)]

    def forward(self, batch: np.ndarray) -> np.ndarray:
        outputs = self._run_at(*batch.shape[2:])(batch)
        return outputs[self.blob].reshape(len(batch), -1).copy()


def _cv_message(error: Exception) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def open_backend(kind: str, text: str, source: str, weights_path: str | None, blob: str,
                 shaped: ShapedNet, *, gpu: int | None = None, allow_missing: bool = False,
                 fold: bool = True) -> Backend:
    """The backend `kind` with the net loaded; `shaped` is the net in the IR (for the weights check
    and output naming of backends without Caffe's own, and what the exported backends export).
    `fold`: Caffe runs BatchNorm and Scale folded into the convolutions before them (OpenCV folds
    them itself; the exported backends run them as written)."""
    if kind == "caffe":
        return CaffeBackend(text, source, weights_path, blob, shaped, gpu=gpu,
                            allow_missing=allow_missing, fold=fold)
    if kind == "opencv":
        if gpu is not None:
            raise ArchError("--gpu needs --backend caffe or torch (the OpenCV backend runs on the CPU)")
        return OpenCVBackend(text, source, weights_path, blob, shaped, allow_missing=allow_missing)
    if kind in ("onnxruntime", "torch"):
        if gpu is not None and kind == "onnxruntime":
            raise ArchError("--gpu needs --backend caffe or torch (the ONNX Runtime backend runs "
                            "on the CPU)")
        if allow_missing:
            raise ArchError(f"--allow-missing needs --backend caffe: the {kind} backend runs "
                            f"exported weights, every layer's")
        return ExportedBackend(kind, weights_path, blob, shaped, gpu=gpu)
    raise ArchError(f"unknown backend '{kind}': expected one of {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class BackendSpec:
    """Everything needed to open a backend, in a form that can be sent to another process."""

    kind: str
    text: str
    source: str
    weights_path: str | None
    blob: str
    shaped: ShapedNet
    gpu: int | None = None
    allow_missing: bool = False
    fold: bool = True

    def open(self) -> Backend:
        return open_backend(self.kind, self.text, self.source, self.weights_path, self.blob,
                            self.shaped, gpu=self.gpu, allow_missing=self.allow_missing,
                            fold=self.fold)


_replica: Backend | None = None  # the backend of a replica process


def limit_threads(threads: int) -> None:
    """Give the backends of this process `threads` threads each, for a process that has that share
    of the cores. Call it before the first backend opens: Caffe's OpenBLAS reads its variable when
    Caffe is imported."""
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import cv2
    cv2.setNumThreads(threads)


def _load_replica(spec: BackendSpec, threads: int) -> None:
    global _replica
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    exit_with_parent()
    limit_threads(threads)  # the cores are shared out between the replicas
    _replica = spec.open()


def _replica_forward(batch: np.ndarray) -> np.ndarray:
    return _replica.forward(batch)


class Forwarder:
    """Forward passes as futures: in this process, or spread over `replicas` processes that each
    hold their own copy of the net.

    On a CPU, Caffe spends most of a forward pass in single-threaded code (im2col, the per-group
    GEMMs of grouped convolutions, BatchNorm), so several copies, each with its share of the cores
    for BLAS, are what uses the machine. The net is first opened here, so every problem with it is reported
    before any process starts."""

    def __init__(self, spec: BackendSpec, replicas: int = 1):
        self.backend: Backend | None = spec.open()
        self.pool = None
        if replicas > 1:
            self.backend = None  # only checked here; the replicas do the work
            self.pool = ProcessPoolExecutor(replicas, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_load_replica,
                                            initargs=(spec, max(1, (os.cpu_count() or 1) // replicas)))
        #: how many groups of images the caller should keep submitted ahead
        self.ahead = 2 * replicas if replicas > 1 else 0

    def submit(self, batch: np.ndarray) -> Future:
        if self.pool is not None:
            return self.pool.submit(_replica_forward, batch)
        future: Future = Future()
        future.set_result(self.backend.forward(batch))
        return future

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
