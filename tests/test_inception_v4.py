"""Inception-v4 (golden comparison: test_golden.py) against the paper's Figures 3-9 and known totals."""
import pytest

from golden import (assert_caffe_allocates_the_inferred_shapes, conv_and_fc_macs, generate,
                    layers_by_name, output_shape)
from archc.ir import ArchError
from archc.ir.net import infer_shapes

ARCH = "inception_v4.arch"


@pytest.fixture(scope="module")
def net299():
    net, _ = generate(ARCH)
    return net


def test_stem_then_4_a_7_b_3_c_modules(net299):
    concats = [layer.name for layer in net299.layers if layer.type == "Concat"]
    assert concats == (["inception_stem1", "inception_stem2", "inception_stem3"]
                       + [f"inception_a{n}_concat" for n in range(1, 5)] + ["reduction_a_concat"]
                       + [f"inception_b{n}_concat" for n in range(1, 8)] + ["reduction_b_concat"]
                       + [f"inception_c{n}_concat" for n in range(1, 4)])


def test_stem_concatenations_keep_the_papers_operand_order(net299):
    by_name = layers_by_name(net299)
    # Figure 3: the first split puts the max pooling first, the last one the convolution first
    assert by_name["inception_stem1"].bottoms == ("inception_stem1_pool", "inception_stem1_3x3_s2")
    assert by_name["inception_stem2"].bottoms == ("inception_stem2_3x3", "inception_stem2_3x3_2")
    assert by_name["inception_stem3"].bottoms == ("inception_stem3_3x3_s2", "inception_stem3_pool")


def test_reductions_use_table_1_filters(net299):
    by_name = layers_by_name(net299)
    # Reduction-A, Inception-v4 row of Table 1: k=192, l=224, m=256, n=384
    assert [by_name["reduction_a_" + s].op.num_output
            for s in ("3x3_2_reduce", "3x3_2", "3x3_3", "3x3")] == [192, 224, 256, 384]
    # Reduction-B (Figure 8): 192 -> 192 and 256 -> 256 (1x7) -> 320 (7x1) -> 320
    assert [by_name["reduction_b_" + s].op.num_output
            for s in ("3x3_reduce", "3x3", "1x7_reduce", "1x7", "7x1", "3x3_2")] == [
        192, 192, 256, 256, 320, 320]


def test_inception_c_concatenates_both_halves_of_each_fork(net299):
    by_name = layers_by_name(net299)
    p = "inception_c3_"
    assert by_name[p + "concat"].bottoms == tuple(p + s for s in (
        "1x1_2", "1x3", "3x1", "1x3_3", "3x1_3", "1x1"))
    assert by_name[p + "1x3"].bottoms == by_name[p + "3x1"].bottoms == (p + "1x1_3",)
    assert by_name[p + "1x3_3"].bottoms == by_name[p + "3x1_3"].bottoms == (p + "1x3_2",)


def test_every_convolution_is_a_named_conv_bn_scale_relu_unit(net299):
    layers = net299.layers
    convs = [i for i, layer in enumerate(layers) if layer.type == "Convolution"]
    assert len(convs) == 149
    for i in convs:
        conv, bn, scale, relu = layers[i:i + 4]
        assert not conv.op.bias_term
        assert (bn.name, bn.op.eps, scale.name, relu.name) == (
            conv.name + "_bn", 0.001, conv.name + "_scale", conv.name + "_relu")


@pytest.mark.parametrize("size, grids", [(299, (35, 17, 8)), (395, (47, 23, 11))])
def test_grid_sizes_and_widths(size, grids):
    net, _ = generate(ARCH, size=size)
    shapes = {row.layer.name: row.output for row in infer_shapes(net).layers}
    a, b, c = grids
    assert shapes["inception_stem3"] == shapes["inception_a4_concat"] == (1, 384, a, a)
    assert shapes["reduction_a_concat"] == shapes["inception_b7_concat"] == (1, 1024, b, b)
    assert shapes["reduction_b_concat"] == shapes["inception_c3_concat"] == (1, 1536, c, c)
    assert shapes["pool_8x8_s1"] == (1, 1536, 1, 1)


def test_classes_sets_the_classifier_width():
    net, _ = generate(ARCH, classes=10)
    assert [(layer.name, layer.op.num_output) for layer in net.layers
            if layer.type == "InnerProduct"] == [("classifier", 10)]
    assert output_shape(ARCH, classes=10) == (1, 10)


def test_parameters_and_macs_match_published_totals(net299):
    rows = infer_shapes(net299).layers
    params = sum(row.params for row in rows)
    # The zoo's caffemodel is 163.1 MB of float32 blobs.
    assert params * 4 / 2**20 == pytest.approx(163.1, rel=0.001)
    # timm's inception_v4 (TF-slim's weights): 42.7 M parameters (no BatchNorm statistics),
    # 12.3 G multiply-accumulates at 299 x 299.
    batchnorms = [row for row in rows if row.layer.type == "BatchNorm"]
    statistics = 2 * sum(row.output[1] for row in batchnorms) + len(batchnorms)
    assert params - statistics == pytest.approx(42.7e6, abs=0.05e6)
    macs = conv_and_fc_macs(rows)
    assert macs == pytest.approx(12.3e9, abs=0.05e9)


def test_unaligned_size_is_reported_at_a_concat():
    # 301: the stem's stride-2 convolution (floor) gives 73 x 73 where the pooling (ceil) gives 74
    with pytest.raises(ArchError, match="inception_stem1"):
        generate(ARCH, size=301)


def test_caffe_allocates_the_inferred_blobs_and_parameters_at_395(caffe):
    net, text = generate(ARCH, size=395)
    assert_caffe_allocates_the_inferred_shapes(net, text)
