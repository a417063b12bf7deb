"""`caffe time` from pycaffe: average forward, backward and forward-backward time per iteration and
per layer, warm-up iterations excluded.

Like `caffe time`, every layer is run on its own (pycaffe's `_forward(i, i)` / `_backward(i, i)`)
between two clock readings, forward in order and backward in reverse order. The net must be loaded
with `force_backward` so that a deploy net (no loss) really computes its backward pass; the
outputs' gradients are set to ones so that every layer propagates real numbers.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class LayerTime:
    name: str
    type: str
    forward_ms: float
    backward_ms: float


@dataclass(frozen=True)
class TimingReport:
    inputs: dict[str, tuple[int, ...]]
    iterations: int
    warmup: int
    forward_ms: float             # averages per iteration
    backward_ms: float | None     # None: forward passes only (exported backends)
    forward_backward_ms: float | None
    layers: list[LayerTime]       # empty: whole passes only

    @property
    def batch(self) -> int:
        """Images per iteration: the first input's batch axis."""
        return next(iter(self.inputs.values()))[0]

    def totals(self) -> dict[str, float]:
        """Per batch and per image, and the images a second the forward pass takes."""
        totals = {"batch": self.batch,
                  "forward_ms": self.forward_ms,
                  "forward_ms_per_image": self.forward_ms / self.batch,
                  "images_per_second": 1000.0 * self.batch / self.forward_ms if self.forward_ms else 0.0}
        if self.backward_ms is not None:
            totals.update(backward_ms=self.backward_ms, forward_backward_ms=self.forward_backward_ms)
        return totals

    def to_json(self, with_layers: bool = True) -> dict:
        document = {"inputs": {name: list(shape) for name, shape in self.inputs.items()},
                    "iterations": self.iterations, "warmup": self.warmup,
                    "totals": self.totals()}
        if with_layers:
            document["layers"] = [asdict(layer) for layer in self.layers]
        return document

    def format(self, title: str, with_layers: bool = True) -> str:
        shapes = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in self.inputs.items())
        lines = [f"{title}: {shapes}; average of {self.iterations} iterations after "
                 f"{self.warmup} warm-up"]
        if with_layers and self.layers:
            width = max([len("layer")] + [len(layer.name) for layer in self.layers])
            type_width = max([len("type")] + [len(layer.type) for layer in self.layers])
            lines.append(f"{'layer':<{width}}  {'type':<{type_width}}  {'forward ms':>10}  "
                         f"{'backward ms':>11}")
            for layer in self.layers:
                lines.append(f"{layer.name:<{width}}  {layer.type:<{type_width}}  "
                             f"{layer.forward_ms:>10.3f}  {layer.backward_ms:>11.3f}")
        totals = self.totals()
        lines.append(f"Average Forward pass:          {self.forward_ms:10.3f} ms")
        if self.backward_ms is not None:
            lines += [f"Average Backward pass:         {self.backward_ms:10.3f} ms",
                      f"Average Forward-Backward:      {self.forward_backward_ms:10.3f} ms"]
        lines += [f"{f'Forward per batch of {self.batch}:':<31}{self.forward_ms:10.3f} ms",
                  f"Forward per image:             {totals['forward_ms_per_image']:10.3f} ms",
                  f"Forward images per second:     {totals['images_per_second']:10.1f}"]
        return "\n".join(lines)


def time_net(net, iterations: int = 50, warmup: int = 1, seed: int = 0,
             clock: Callable[[], float] = time.perf_counter) -> TimingReport:
    """Time `net` (a caffe.Net loaded with force_backward) as `caffe time` does."""
    if iterations < 1 or warmup < 0:
        raise ValueError("iterations must be at least 1 and warm-up at least 0")
    rng = np.random.default_rng(seed)
    for name in net.inputs:
        blob = net.blobs[name]
        blob.data[...] = rng.standard_normal(blob.data.shape, dtype=np.float32)
    for name in net.outputs:
        net.blobs[name].diff[...] = 1.0
    names = list(net._layer_names)
    count = len(names)
    forward = np.zeros(count)
    backward = np.zeros(count)
    total_forward = total_backward = total = 0.0
    for iteration in range(warmup + iterations):
        measured = iteration >= warmup
        started = clock()
        for index in range(count):
            before = clock()
            net._forward(index, index)
            if measured:
                forward[index] += clock() - before
        middle = clock()
        for index in reversed(range(count)):
            before = clock()
            net._backward(index, index)
            if measured:
                backward[index] += clock() - before
        finished = clock()
        if measured:
            total_forward += middle - started
            total_backward += finished - middle
            total += finished - started
    per_ms = 1000.0 / iterations
    layers = [LayerTime(name, net.layers[index].type, forward[index] * per_ms, backward[index] * per_ms)
              for index, name in enumerate(names)]
    return TimingReport({name: tuple(net.blobs[name].data.shape) for name in net.inputs},
                        iterations, warmup, total_forward * per_ms, total_backward * per_ms,
                        total * per_ms, layers)


def time_forward(forward: Callable[..., object], inputs: dict[str, np.ndarray],
                 iterations: int = 50, warmup: int = 1,
                 clock: Callable[[], float] = time.perf_counter) -> TimingReport:
    """Time `forward(*inputs)`, whole passes, warm-up excluded."""
    if iterations < 1 or warmup < 0:
        raise ValueError("iterations must be at least 1 and warm-up at least 0")
    for _ in range(warmup):
        forward(*inputs.values())
    started = clock()
    for _ in range(iterations):
        forward(*inputs.values())
    return TimingReport({name: x.shape for name, x in inputs.items()}, iterations, warmup,
                        (clock() - started) * 1000.0 / iterations, None, None, [])
