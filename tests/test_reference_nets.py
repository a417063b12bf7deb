"""The published reference nets work with every command that reads a model.

BVLC's deploy nets and examples go through the command line: `archc summary`, `archc diff` with
itself, `archc weights --init` and one timed iteration in Caffe (`archc time`). The classification
and SE nets import and infer; the SE-ResNet's fork layers (Axpy) are its only refusal.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from archc.codegen.parse import import_net
from archc.model import load_model
from archc.ir import ArchError, infer_shapes
from conftest import reference_root

BVLC = ["models/bvlc_alexnet/deploy.prototxt", "models/bvlc_reference_caffenet/deploy.prototxt",
        "models/bvlc_googlenet/deploy.prototxt", "models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt",
        "models/finetune_flickr_style/deploy.prototxt", "examples/cifar10/cifar10_quick.prototxt",
        "examples/cifar10/cifar10_full.prototxt", "examples/mnist/lenet.prototxt",
        "examples/siamese/mnist_siamese.prototxt",
        "examples/net_surgery/bvlc_caffenet_full_conv.prototxt"]


def reference(relative: str):
    path = reference_root() / relative
    if not path.exists():
        pytest.skip(f"reference file not found: {path} (set ARCHC_REFERENCE_DIR)")
    return path


def archc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archc", *args], capture_output=True, text=True)


@pytest.mark.parametrize("relative", BVLC)
def test_every_command_reads_the_bvlc_net(caffe, tmp_path, relative):
    path = str(reference(f"bvlc/{relative}"))
    weights = str(tmp_path / "init.caffemodel")
    # one image a pass: the siamese example's batch is 10,000
    for command in (["summary", path], ["diff", path, path], ["weights", "--init", path, "-o", weights],
                    ["time", path, "--iterations", "1", "--warmup", "0", "--batch", "1"]):
        result = archc(*command)
        assert result.returncode == 0, f"archc {' '.join(command)}:\n{result.stderr}"


@pytest.mark.parametrize("family", ["cls", "senet"])
def test_every_classification_net_imports_and_infers(family):
    paths = sorted(reference(family).rglob("*.prototxt"))
    assert paths, f"no prototxt under {reference(family)}"
    for path in paths:  # SE-ResNet's Axpy through the model library's fork declarations
        infer_shapes(load_model(path).net)


def test_the_se_resnet_is_refused_for_its_fork_layers_only():
    """Axpy (a * x + y, a per channel) is a fork's type; with each one read as the sum x + y,
    everything else in the file imports."""
    text = reference("senet/SE-ResNet-50.prototxt").read_text()
    with pytest.raises(ArchError, match="type 'Axpy', which archc does not support"):
        import_net(text, "SE-ResNet-50.prototxt")
    axpy = re.compile(r'type: "Axpy"\n(\s*)bottom: "[^"]*"\n')
    summed = axpy.sub(r'type: "Eltwise"\n', text)
    assert summed.count('type: "Eltwise"') == text.count('type: "Axpy"') + text.count('type: "Eltwise"')
    infer_shapes(import_net(summed, "SE-ResNet-50, Axpy as sums"))
