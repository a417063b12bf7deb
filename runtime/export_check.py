"""`archc export --check`: the exported model against real Caffe, blob by blob, on the same inputs.

Caffe runs the net as written with the very arrays the export holds (as it would load them from
the .caffemodel); the export runs in this process (ONNX Runtime, or the PyTorch program that
model.py prints) returning every blob it computes. Blobs are compared in Caffe's layer order by
their largest difference relative to the blob's largest magnitude (a per-element ratio means
nothing where Caffe's value is near 0), and the first layer whose blob differs by more than the
tolerance is named. A net with a fork's layer types that this Caffe lacks is exported and left
unchecked, with an error saying why; the forms of those types are checked in archc's tests
against nets of Caffe's own layers computing the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archc.export.common import Parameters
from archc.ir import ShapedNet
from archc.runtime import exporting
from archc.runtime.loader import MissingLayerTypes, load_net_text


@dataclass(frozen=True)
class BlobDifference:
    layer: str        # the last layer to write the blob (its final value is compared)
    type: str
    blob: str
    relative: float   # max |ours - caffe| / max |caffe|
    absolute: float   # max |ours - caffe|


def relative_difference(ours: np.ndarray, caffe: np.ndarray) -> float:
    """max |ours - caffe| over max |caffe|: the difference on the blob's own scale."""
    scale = float(np.abs(caffe).max(initial=0.0))
    difference = float(np.abs(ours.astype(np.float64) - caffe).max(initial=0.0))
    return difference / scale if scale else difference


def caffe_blobs(text: str, source: str, parameters: Parameters,
                inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every blob of the net after Caffe's forward pass, its parameters set to `parameters`."""
    net = load_net_text(text, source).net
    for name, blobs in parameters.items():
        for blob, values in zip(net.params[name], blobs, strict=True):
            blob.data[...] = values
    for name, values in inputs.items():
        net.blobs[name].reshape(*values.shape)
    net.reshape()
    for name, values in inputs.items():
        net.blobs[name].data[...] = values
    net.forward()
    return {name: blob.data.copy() for name, blob in net.blobs.items()}


def differences(shaped: ShapedNet, caffe: dict[str, np.ndarray],
                ours: dict[str, np.ndarray]) -> list[BlobDifference]:
    """Each blob both computed, where its final value is written, in the net's layer order."""
    final = {top: (index, entry.layer) for index, entry in enumerate(shaped.layers)
             for top in entry.layer.tops}
    found = []
    for blob, (_, layer) in sorted(final.items(), key=lambda item: item[1][0]):
        if blob in ours and blob in caffe and blob not in shaped.net.inputs:
            found.append(BlobDifference(layer.name, layer.type, blob,
                                        relative_difference(ours[blob], caffe[blob]),
                                        float(np.abs(ours[blob] - caffe[blob]).max(initial=0.0))))
    return found


@dataclass(frozen=True)
class CheckReport:
    target: str
    inputs: str                       # what was fed
    compared: list[BlobDifference]
    tolerance: float

    @property
    def first_divergence(self) -> BlobDifference | None:
        return next((d for d in self.compared if d.relative > self.tolerance), None)

    def describe(self) -> str:
        worst = max(self.compared, key=lambda d: d.relative)
        divergence = self.first_divergence
        if divergence is None:
            return (f"check ({self.inputs}): {self.target} matches Caffe on {len(self.compared)} "
                    f"blobs within {self.tolerance:g} (largest relative difference "
                    f"{worst.relative:.2g}, blob '{worst.blob}')")
        return (f"check ({self.inputs}): {self.target} diverges from Caffe first at layer "
                f"'{divergence.layer}' ({divergence.type}): blob '{divergence.blob}' differs by "
                f"{divergence.relative:.3g} of its largest value (max abs {divergence.absolute:.3g}; "
                f"tolerance {self.tolerance:g})")


def check(text: str, source: str, written: exporting.Prepared, exported: exporting.Prepared,
          target: str, inputs: dict[str, np.ndarray], label: str,
          tolerance: float) -> CheckReport:
    """Run Caffe on the net as `written` and the `exported` one on `inputs`, and compare blobs.
    Raises MissingLayerTypes, saying so, where this Caffe cannot run the net (a fork's layer)."""
    try:
        caffe = caffe_blobs(text, source, written.parameters, inputs)
    except MissingLayerTypes as error:
        raise MissingLayerTypes(f"the export is written and left unchecked, as Caffe cannot run "
                                f"the net: {error.message}") from None
    blobs = exporting.written_blobs(exported.shaped)
    if target == "onnx":
        run, name = exporting.OnnxRuntimeRun(exported, blobs), "ONNX Runtime"
    else:
        run, name = exporting.TorchRun(exported, blobs), "PyTorch"
    ours = run(*(inputs[blob] for blob in exported.shaped.net.inputs))
    return CheckReport(name, label, differences(written.shaped, caffe, ours), tolerance)
