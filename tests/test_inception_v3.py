"""Inception-v3 (golden comparison: test_golden.py) against the paper's Table 1 and known totals."""
import pytest

from golden import (assert_caffe_allocates_the_inferred_shapes, conv_and_fc_macs, generate,
                    layers_by_name, output_shape)
from archc.ir import ArchError
from archc.ir.net import infer_shapes

ARCH = "inception_v3.arch"


@pytest.fixture(scope="module")
def net299():
    net, _ = generate(ARCH)
    return net


def test_modules_per_grid_and_their_varying_widths(net299):
    by_name = layers_by_name(net299)
    concats = [layer.name for layer in net299.layers if layer.type == "Concat"]
    # Table 1: 3 x Inception-A, reduction, 4 x Inception-B, reduction, 2 x Inception-C
    assert concats == (["inception_a1_output", "inception_a2_output", "inception_a3_output",
                        "reduction_a_concat"]
                       + [f"inception_b{n}_concat" for n in range(1, 5)] + ["reduction_b_concat"]
                       + ["inception_c1_concat", "inception_c2_concat"])
    assert [by_name[f"inception_a{n}_pool_proj"].op.num_output for n in (1, 2, 3)] == [32, 64, 64]
    assert [by_name[f"inception_b{n}_1x7"].op.num_output for n in (1, 2, 3, 4)] == [128, 160, 160, 192]
    # TF-slim's last module pools with max, the others with average
    assert [by_name[f"inception_c{n}_pool"].op.method for n in (1, 2)] == ["AVE", "MAX"]


def test_inception_c_concatenates_both_halves_of_each_fork(net299):
    by_name = layers_by_name(net299)
    p = "inception_c1_"
    assert by_name[p + "concat"].bottoms == tuple(p + s for s in (
        "1x1_2", "1x3", "3x1", "1x3_2", "3x1_2", "1x1"))
    assert by_name[p + "1x3"].bottoms == by_name[p + "3x1"].bottoms == (p + "1x3_reduce",)
    assert by_name[p + "1x3_2"].bottoms == by_name[p + "3x1_2"].bottoms == (p + "3x3",)


def test_every_convolution_is_bias_free_with_tf_batchnorm_and_same_padding(net299):
    layers = net299.layers
    convs = [i for i, layer in enumerate(layers) if layer.type == "Convolution"]
    assert len(convs) == 94
    for i in convs:
        conv, bn, scale, relu = layers[i:i + 4]
        assert not conv.op.bias_term
        assert (bn.type, bn.name, bn.op.eps) == ("BatchNorm", conv.name + "_bn", 0.001)
        assert (scale.type, scale.name, relu.type) == ("Scale", conv.name + "_scale", "ReLU")
        # asymmetric 1xn / nx1 kernels pad only along their long side
        op = conv.op
        if op.kernel_h != op.kernel_w:
            assert (op.pad_h, op.pad_w) == (op.kernel_h // 2, op.kernel_w // 2)


@pytest.mark.parametrize("size, grids", [(299, (35, 17, 8)), (395, (47, 23, 11))])
def test_grid_sizes_and_widths(size, grids):
    net, _ = generate(ARCH, size=size)
    shapes = {row.layer.name: row.output for row in infer_shapes(net).layers}
    a, b, c = grids
    assert shapes["pool2_3x3_s2"] == (1, 192, a, a)
    assert shapes["inception_a3_output"] == (1, 288, a, a)
    assert shapes["reduction_a_concat"] == shapes["inception_b4_concat"] == (1, 768, b, b)
    assert shapes["reduction_b_concat"] == (1, 1280, c, c)
    assert shapes["inception_c2_concat"] == (1, 2048, c, c)
    assert shapes["pool_8x8_s1"] == (1, 2048, 1, 1)


def test_classes_sets_the_classifier_width():
    net, _ = generate(ARCH, classes=10)
    assert [(layer.name, layer.op.num_output) for layer in net.layers
            if layer.type == "InnerProduct"] == [("classifier", 10)]
    assert output_shape(ARCH, classes=10) == (1, 10)


def test_parameters_and_macs_match_published_totals(net299):
    rows = infer_shapes(net299).layers
    params = sum(row.params for row in rows)
    # Keras' InceptionV3 has 23,851,784 parameters with BatchNorm without a learned scale;
    # Caffe's Scale adds one gamma per normalised channel, and BatchNorm one moving-average factor.
    batchnorms = [row for row in rows if row.layer.type == "BatchNorm"]
    assert params == 23_851_784 + sum(row.output[1] for row in batchnorms) + len(batchnorms)
    # The zoo's caffemodel is 91.1 MB of float32 blobs.
    assert params * 4 / 2**20 == pytest.approx(91.1, rel=0.001)
    # Zoph et al. (2018), Table 2: 5.72 B multiply-adds at 299 x 299.
    macs = conv_and_fc_macs(rows)
    assert macs == pytest.approx(5.72e9, rel=0.005)


def test_unaligned_size_is_reported_at_the_reduction_concat():
    # 310: the stride-2 convolutions (floor) give 8 x 8 where the pooling (ceil) gives 9 x 9
    with pytest.raises(ArchError, match="reduction_b_concat"):
        generate(ARCH, size=310)


def test_caffe_allocates_the_inferred_blobs_and_parameters_at_395(caffe):
    net, text = generate(ARCH, size=395)
    assert_caffe_allocates_the_inferred_shapes(net, text)
