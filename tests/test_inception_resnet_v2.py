"""Inception-ResNet-v2 (golden comparison: test_golden.py) against the paper's structure and known totals."""
import pytest

from golden import (assert_caffe_allocates_the_inferred_shapes, conv_and_fc_macs, generate,
                    output_shape)
from archc.ir import ArchError
from archc.ir.net import infer_shapes

ARCH = "inception_resnet_v2.arch"
PREFIX = "inception_resnet_v2_"


@pytest.fixture(scope="module")
def net299():
    net, _ = generate(ARCH)
    return net


def test_repeats_and_residual_scales_per_grid(net299):
    sums = {layer.name[len(PREFIX):-len("_residual_eltwise")]: layer.op.coeff
            for layer in net299.layers if layer.name.endswith("_residual_eltwise")}
    # 10 x A, 20 x B, 10 x C, numbered from 1 within each grid size
    assert list(sums) == ([f"a{n}" for n in range(1, 11)] + [f"b{n}" for n in range(1, 21)]
                          + [f"c{n}" for n in range(1, 11)])
    assert {sums[f"a{n}"] for n in range(1, 11)} == {(1.0, 0.17)}
    assert {sums[f"b{n}"] for n in range(1, 21)} == {(1.0, 0.1)}
    assert {sums[f"c{n}"] for n in range(1, 10)} == {(1.0, 0.2)}
    assert sums["c10"] == ()  # the last block adds its branch unscaled, no coefficients written


def test_last_block_has_no_relu_after_its_sum(net299):
    relus = [layer.name for layer in net299.layers if layer.name.endswith("_residual_eltwise_relu")]
    assert len(relus) == 39
    assert relus[-1] == PREFIX + "c9_residual_eltwise_relu"
    names = [layer.name for layer in net299.layers]
    assert names[names.index(PREFIX + "c10_residual_eltwise") + 1] == "conv6_1x1"


def test_up_projections_have_bias_and_restore_the_shortcut_width(net299):
    by_name = {layer.name: layer for layer in net299.layers}
    ups = [layer for layer in net299.layers if layer.name.endswith("_up")]
    assert len(ups) == 40
    assert {(layer.name[len(PREFIX)], layer.op.num_output) for layer in ups} == {
        ("a", 320), ("b", 1088), ("c", 2080)}
    assert all(layer.op.bias_term and layer.op.kernel_h == layer.op.kernel_w == 1 for layer in ups)
    # no BatchNorm reads an up-projection: the sum consumes it directly
    assert not any(layer.type == "BatchNorm" and layer.bottoms[0].endswith("_up")
                   for layer in net299.layers)
    assert by_name[PREFIX + "a1_residual_eltwise"].bottoms == ("stem_concat", PREFIX + "a1_up")


@pytest.mark.parametrize("size, grids", [(299, (35, 17, 8)), (395, (47, 23, 11))])
def test_grid_sizes_and_widths(size, grids):
    net, _ = generate(ARCH, size=size)
    shapes = {row.layer.name: row.output for row in infer_shapes(net).layers}
    a, b, c = grids
    assert shapes["stem_concat"] == (1, 320, a, a)
    assert shapes["reduction_a_concat"] == (1, 1088, b, b)
    assert shapes["reduction_b_concat"] == (1, 2080, c, c)
    assert shapes["conv6_1x1"] == (1, 1536, c, c)


def test_classes_sets_the_classifier_width():
    net, _ = generate(ARCH, classes=10)
    assert net.layers[-2].name == "classifier" and net.layers[-2].op.num_output == 10
    assert output_shape(ARCH, classes=10) == (1, 10)


def test_parameters_and_macs_match_published_totals(net299):
    rows = infer_shapes(net299).layers
    # Keras' InceptionResNetV2 has 55,873,736 parameters with BatchNorm without a learned scale;
    # Caffe's Scale adds one gamma per normalised channel, and BatchNorm one moving-average factor.
    batchnorms = [row for row in rows if row.layer.type == "BatchNorm"]
    normalised_channels = sum(row.output[1] for row in batchnorms)
    assert sum(row.params for row in rows) == 55_873_736 + normalised_channels + len(batchnorms)
    # Zoph et al. (2018), Table 2: 13.2 B multiply-adds at 299 x 299.
    macs = conv_and_fc_macs(rows)
    assert macs == pytest.approx(13.2e9, rel=0.005)


def test_unaligned_size_is_reported_at_the_reduction_concat():
    # 320: the stride-2 convolutions (floor) give 18 x 18 where the pooling (ceil) gives 19 x 19
    with pytest.raises(ArchError, match="reduction_a_concat"):
        generate(ARCH, size=320)


def test_caffe_allocates_the_inferred_blobs_and_parameters_at_395(caffe):
    net, text = generate(ARCH, size=395)
    assert_caffe_allocates_the_inferred_shapes(net, text)
