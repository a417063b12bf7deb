"""Inception-v2 (BN-Inception as TF-slim trained it) against the published inception-v2 and the
output depths of the paper's Figure 5."""
import pytest

from archc.ir import ArchError
from archc.ir.net import infer_shapes
from golden import (assert_caffe_allocates_the_inferred_shapes, assert_matches,
                    assert_only_input_size_changes, generate, layers_by_name, output_shape)

ARCH = "inception_v2.arch"
# Figure 5's output depth of each module, the reductions 3c and 4e included, and the grid (0, 1,
# 2: 28, 14, 7 in the paper at 224 pixels) that it outputs.
DEPTHS = {"inception_a1_output": (256, 0), "inception_a2_output": (320, 0),
          "reduction_a_concat": (576, 1), "inception_b1_output": (576, 1),
          "inception_b2_output": (576, 1), "inception_b3_output": (576, 1),
          "inception_b4_output": (576, 1), "reduction_b_concat": (1024, 2),
          "inception_c1_output": (1024, 2), "inception_c2_output": (1024, 2)}


@pytest.fixture(scope="module")
def net231():
    net, _ = generate(ARCH)
    return net


def test_generated_equals_published(reference_cls):
    _, text = generate(ARCH)
    assert_matches(text, reference_cls / "inception" / "deploy_inception-v2.prototxt")


@pytest.mark.parametrize("size, grids", [(231, (29, 15, 8)), (327, (41, 21, 11))])
def test_modules_have_figure_5_depths(size, grids):
    net, _ = generate(ARCH, size=size)
    shapes = {row.layer.name: row.outputs[0] for row in infer_shapes(net).layers}
    assert [layer.name for layer in net.layers if layer.type == "Concat"] == list(DEPTHS)
    for name, (depth, grid) in DEPTHS.items():
        assert shapes[name] == (1, depth, grids[grid], grids[grid])


def test_stem_is_a_separable_7x7(net231):
    layers = layers_by_name(net231)
    depthwise, pointwise = layers["conv1_7x7"].op, layers["conv1_7x7_increase"].op
    assert (depthwise.group, depthwise.num_output, depthwise.kernel_h, depthwise.bias_term) == (3, 24, 7, False)
    assert (pointwise.num_output, pointwise.kernel_h, pointwise.bias_term) == (64, 1, True)
    assert "conv1_7x7_bn" not in layers  # the stem's BatchNorm is folded into that bias


def test_double_3x3_towers_and_average_pooling(net231):
    layers = layers_by_name(net231)
    p = "inception_c2_"
    assert layers[p + "output"].bottoms == tuple(p + s for s in ("1x1", "3x3_a", "3x3_b2", "pool_proj"))
    assert layers[p + "3x3_b2"].bottoms == (p + "3x3_b1",)
    assert {layer.op.method for layer in net231.layers
            if layer.type == "Pooling" and layer.name.startswith("inception_")} == {"AVE"}
    r = "reduction_b_"
    assert layers[r + "concat"].bottoms == (r + "3x3_a", r + "3x3_b2", r + "pool")
    assert layers[r + "3x3_a"].op.stride_h == layers[r + "3x3_b2"].op.stride_h == 2


def test_unaligned_size_is_reported_at_the_reduction_concat():
    # 224: the stride-2 convolutions give 14 x 14 where the pooling gives 15 x 15
    with pytest.raises(ArchError, match="reduction_a_concat"):
        generate(ARCH, size=224)


def test_size_changes_only_the_input_shape():
    assert_only_input_size_changes(ARCH, 327)


def test_classes_sets_the_classifier_width():
    assert output_shape(ARCH, classes=10) == (1, 10)


def test_caffe_allocates_the_inferred_blobs_and_parameters(caffe, net231):
    _, text = generate(ARCH)
    assert_caffe_allocates_the_inferred_shapes(net231, text)
