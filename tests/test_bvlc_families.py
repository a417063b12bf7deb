"""BVLC Caffe's classics as .arch families: AlexNet, CaffeNet and GoogLeNet against BVLC's own
deploy files, and in real Caffe."""
from __future__ import annotations

import pytest

from conftest import reference_root
from golden import assert_caffe_allocates_the_inferred_shapes, assert_matches, generate, output_shape

FAMILIES = {"alexnet.arch": "bvlc_alexnet", "caffenet.arch": "bvlc_reference_caffenet",
            "googlenet.arch": "bvlc_googlenet"}


@pytest.mark.parametrize("arch", FAMILIES)
def test_equals_bvlcs_deploy_file(reference_cls, arch):
    _, text = generate(arch)
    assert_matches(text, reference_root() / "bvlc" / "models" / FAMILIES[arch] / "deploy.prototxt")


@pytest.mark.parametrize("arch", FAMILIES)
def test_batch_and_classes(arch):
    assert output_shape(arch, batch=1, classes=10) == (1, 10)


def test_alexnet_normalises_before_pooling_and_caffenet_after():
    alexnet, _ = generate("alexnet.arch")
    caffenet, _ = generate("caffenet.arch")
    assert [layer.name for layer in alexnet.layers][2:4] == ["norm1", "pool1"]
    assert [layer.name for layer in caffenet.layers][2:4] == ["pool1", "norm1"]


@pytest.mark.parametrize("arch", ["caffenet.arch", "googlenet.arch"])
def test_caffe_allocates_the_inferred_shapes(caffe, arch):
    net, text = generate(arch, batch=1)
    assert_caffe_allocates_the_inferred_shapes(net, text)
