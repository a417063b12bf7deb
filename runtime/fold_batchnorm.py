"""Folding inference-time BatchNorm and Scale layers into the convolution that feeds them.

In a deploy net, `Convolution -> BatchNorm (global statistics) [-> Scale]`, run in place on the
convolution's blob, is the convolution followed by one affine map per output channel, which the
convolution's weights and bias can absorb. Caffe on a CPU spends about a third of a ResNeXt-50
forward pass in those BatchNorm and Scale layers (several passes over each blob), so `archc eval`
runs the folded net. It computes the same function up to float rounding (tests compare the two in
real Caffe on real weights); every blob keeps its name and its final value, since the folded
layers only ever rewrote the convolution's blob in place.

    plan(net)                    -> which (convolution, batch norm, scale) chains fold
    folded_net(net, folds)       -> the net without them, each convolution with a bias
    folded_text(net, folds)      -> its prototxt
    folded_parameters(...)       -> a convolution's new weights and bias
    load_folded(loaded, net, ...) -> a Caffe net of the folded structure with folded weights
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from archc.ir import Net
from archc.ir.ops import BatchNorm, Convolution, Scale


@dataclass(frozen=True)
class Fold:
    convolution: str
    batch_norm: str
    scale: str | None
    eps: float


def plan(net: Net) -> list[Fold]:
    """The chains that fold: a Convolution whose blob is next touched by an in-place BatchNorm
    that uses global statistics, and optionally next after that by an in-place one-input Scale
    per channel. Any other reader or writer of the blob in between keeps the chain as written."""
    folds = []
    for index, layer in enumerate(net.layers):
        if not isinstance(layer.op, Convolution) or len(layer.tops) != 1:
            continue
        blob = layer.tops[0]
        batch_norm = _next_in_place(net, index, blob, BatchNorm)
        if batch_norm is None or not net.layers[batch_norm].op.use_global_stats:
            continue
        scale = _next_in_place(net, batch_norm, blob, Scale)
        if scale is not None and not _per_channel(net.layers[scale].op):
            scale = None  # it stays in the net, after the folded convolution
        folds.append(Fold(layer.name, net.layers[batch_norm].name,
                          None if scale is None else net.layers[scale].name,
                          net.layers[batch_norm].op.eps))
    return folds


def _per_channel(scale: Scale) -> bool:
    """Whether a one-input Scale of a convolution's N x C x H x W output is one factor per channel."""
    return scale.axis in (1, -3) and scale.num_axes == 1


def _next_in_place(net: Net, after: int, blob: str, kind: type) -> int | None:
    """Index of the next layer after `after` that touches `blob`, if it is a `kind` that reads
    and writes only that blob."""
    for index in range(after + 1, len(net.layers)):
        layer = net.layers[index]
        if blob in layer.bottoms or blob in layer.tops:
            if isinstance(layer.op, kind) and layer.bottoms == layer.tops == (blob,):
                return index
            return None
    return None


def folded_net(net: Net, folds: list[Fold]) -> Net:
    """`net` without the folded BatchNorm and Scale layers; their convolutions have a bias."""
    removed = {fold.batch_norm for fold in folds} | {fold.scale for fold in folds}
    convolutions = {fold.convolution for fold in folds}
    layers = [replace(layer, op=replace(layer.op, bias_term=True))
              if layer.name in convolutions else layer
              for layer in net.layers if layer.name not in removed]
    return replace(net, layers=layers)


def folded_parameters(convolution: list[np.ndarray], batch_norm: list[np.ndarray],
                      scale: list[np.ndarray] | None, eps: float) -> list[np.ndarray]:
    """Weights and bias of the convolution that computes convolution, then Caffe's BatchNorm
    (`(x - mean) / sqrt(variance + eps)`, mean and variance stored multiplied by the moving-average
    factor in the third blob, a factor of 0 meaning 0), then Scale (`gamma * x [+ beta]`)."""
    weights = convolution[0].astype(np.float64)
    channels = weights.shape[0]
    bias = convolution[1].astype(np.float64) if len(convolution) > 1 else np.zeros(channels)
    stored_factor = float(batch_norm[2].reshape(-1)[0])
    factor = 0.0 if stored_factor == 0 else 1.0 / stored_factor
    mean = batch_norm[0].astype(np.float64) * factor
    variance = batch_norm[1].astype(np.float64) * factor
    gamma, beta = np.ones(channels), np.zeros(channels)
    if scale is not None:
        gamma = scale[0].astype(np.float64).reshape(channels)
        if len(scale) > 1:
            beta = scale[1].astype(np.float64).reshape(channels)
    multiplier = gamma / np.sqrt(variance + eps)
    return [(weights * multiplier[:, None, None, None]).astype(np.float32),
            ((bias - mean) * multiplier + beta).astype(np.float32)]


def folded_text(net: Net, folds: list[Fold]) -> str:
    """The prototxt of `folded_net(net, folds)`."""
    from archc.codegen.render import render
    return render(folded_net(net, folds))


def load_folded(loaded, net: Net, folds: list[Fold], source: str, *, gpu: int | None = None):
    """A Caffe net of `folded_net(net, folds)`, its weights taken from `loaded` (a Caffe net of
    `net` with its weights), the folded convolutions' computed."""
    from archc.runtime.loader import load_net_text

    folded = load_net_text(folded_text(net, folds), f"{source} (BatchNorm folded)", gpu=gpu).net
    by_convolution = {fold.convolution: fold for fold in folds}
    for name, blobs in folded.params.items():
        fold = by_convolution.get(name)
        if fold is None:
            values = [blob.data for blob in loaded.params[name]]
        else:
            values = folded_parameters(
                [blob.data for blob in loaded.params[name]],
                [blob.data for blob in loaded.params[fold.batch_norm]],
                None if fold.scale is None else [blob.data for blob in loaded.params[fold.scale]],
                fold.eps)
        for blob, value in zip(blobs, values, strict=True):
            blob.data[...] = value
    return folded
