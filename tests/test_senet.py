"""Squeeze-and-excitation families (the SENet authors' Caffe release): SE-ResNet-50 and
SE-BN-Inception against the published files; the other depths and SE-ResNeXt against the paper's
parameter counts."""
from __future__ import annotations

import pytest

from archc.ir import infer_shapes
from conftest import reference_root
from golden import assert_caffe_allocates_the_inferred_shapes, assert_matches, generate

# trainable parameters in millions, Table 2 of Hu et al. (2018)
PAPER = {("se_resnet.arch", 50): 28.1, ("se_resnet.arch", 101): 49.3, ("se_resnet.arch", 152): 66.8,
         ("se_resnext.arch", 50): 27.6, ("se_resnext.arch", 101): 48.9}


def test_se_resnet50_equals_the_published_file(reference_cls):
    _, text = generate("se_resnet.arch", depth=50)
    assert_matches(text, reference_root() / "senet" / "SE-ResNet-50.prototxt")


def test_se_bn_inception_equals_the_published_file(reference_cls):
    _, text = generate("se_bn_inception.arch")
    assert_matches(text, reference_root() / "senet" / "SE-BN-Inception.prototxt")


def test_caffe_runs_se_bn_inceptions_two_input_scale_as_inferred(caffe):
    net, text = generate("se_bn_inception.arch")
    layers = {layer.name: layer for layer in net.layers}
    assert layers["inception_3a_scale"].bottoms == ("inception_3a/concat", "inception_3a_prob_reshape")
    assert layers["inception_5b_1x1_down"].op.num_output == 1024 // 16
    assert_caffe_allocates_the_inferred_shapes(net, text)


@pytest.mark.parametrize("family, depth", PAPER)
def test_every_variant_has_the_papers_size(family, depth):
    net, _ = generate(family, depth=depth)
    shaped = infer_shapes(net)
    trainable = sum(e.params for e in shaped.layers if e.layer.type != "BatchNorm")
    assert trainable / 1e6 == pytest.approx(PAPER[(family, depth)], abs=0.15)
    assert sum(1 for e in shaped.layers if e.layer.type == "Axpy") == \
        {50: 16, 101: 33, 152: 50}[depth]
    assert shaped.layers[-1].output == (1, 1000)


def test_se_resnext_groups_the_3x3_and_strides_it():
    net, _ = generate("se_resnext.arch", depth=50)
    layers = {layer.name: layer for layer in net.layers}
    assert (layers["conv3_1_3x3"].op.group, layers["conv3_1_3x3"].op.stride_h) == (32, 2)
    assert layers["conv3_1_1x1_reduce"].op.stride_h == 1
    assert layers["conv2_1_1x1_down"].op.num_output == 256 // 16
