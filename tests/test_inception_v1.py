"""Inception-v1 (GoogLeNet as TF-slim trained it) against the published inception-v1-tf and the
paper's Table 1."""
import pytest

from archc.ir.net import infer_shapes
from golden import (assert_caffe_allocates_the_inferred_shapes, assert_matches,
                    assert_only_input_size_changes, generate, layers_by_name, output_shape)

ARCH = "inception_v1.arch"
# Table 1's output depth of each module (independent of TF-slim's 3x3 for the paper's 5x5), and
# the grid it works on at 224 pixels.
DEPTHS = {"a1": (256, 28), "a2": (480, 28), "b1": (512, 14), "b2": (512, 14), "b3": (512, 14),
          "b4": (528, 14), "b5": (832, 14), "c1": (832, 7), "c2": (1024, 7)}


@pytest.fixture(scope="module")
def net224():
    net, _ = generate(ARCH)
    return net


def test_generated_equals_published(reference_cls):
    _, text = generate(ARCH, source="tf")
    assert_matches(text, reference_cls / "inception" / "deploy_inception-v1-tf.prototxt")


def test_modules_have_table_1_depths_and_grids(net224):
    shapes = {row.layer.name: row.outputs[0] for row in infer_shapes(net224).layers}
    concats = [layer.name for layer in net224.layers if layer.type == "Concat"]
    assert concats == [f"inception_{m}_output" for m in DEPTHS]
    for module, (depth, side) in DEPTHS.items():
        assert shapes[f"inception_{module}_output"] == (1, depth, side, side)
    assert shapes["pool_7x7_s1"] == (1, 1024, 1, 1)


def test_towers_in_concat_order_with_max_pooling(net224):
    layers = layers_by_name(net224)
    p = "inception_b1_"
    assert layers[p + "output"].bottoms == tuple(p + s for s in ("1x1", "3x3_a", "3x3_b", "pool_proj"))
    assert layers[p + "pool"].op.method == "MAX" and layers[p + "pool"].op.stride_h == 1
    # TF-slim's tower where the paper has a 5x5: a single 3x3
    assert (layers[p + "3x3_b"].op.kernel_h, layers[p + "3x3_b"].op.num_output) == (3, 48)


def test_every_convolution_but_the_classifier_is_bias_free_with_tf_batchnorm(net224):
    layers = net224.layers
    convs = [i for i, layer in enumerate(layers) if layer.type == "Convolution"]
    assert len(convs) == 3 + 9 * 6 + 1
    for i in convs[:-1]:
        conv, bn, scale, relu = layers[i:i + 4]
        assert not conv.op.bias_term
        assert (bn.name, bn.op.eps, scale.name, relu.type) == (
            conv.name + "_bn", 0.001, conv.name + "_scale", "ReLU")
    assert [layer.name for layer in layers[convs[-1] - 2:]] == [
        "pool_7x7_s1", "pool_7x7_s1_drop", "classifier", "reshape", "prob"]


def test_dsd_is_bvlc_googlenet_for_one_image(reference_cls):
    """The zoo's inception-v1-dsd is BVLC's GoogLeNet retrained with DSD (in Caffe, from BVLC's
    model), so its layers are BVLC's: the same net with the zoo's batch of one."""
    from archc.analysis.diff import diff_nets, normalise
    from archc.codegen.parse import read_prototxt
    _, text = generate(ARCH, source="dsd")
    bvlc = reference_cls.parent / "bvlc" / "models" / "bvlc_googlenet" / "deploy.prototxt"
    differences = diff_nets(normalise(read_prototxt(text, "<generated>")),
                            normalise(read_prototxt(bvlc.read_text(), str(bvlc))))
    assert [str(d) for d in differences] == ["input 'data': shape 1 x 3 x 224 x 224 in A, "
                                             "10 x 3 x 224 x 224 in B"]


def test_size_changes_only_the_input_shape():
    assert_only_input_size_changes(ARCH, 320)


def test_classes_sets_the_classifier_width():
    assert output_shape(ARCH, classes=10) == (1, 10)


def test_caffe_allocates_the_inferred_blobs_and_parameters(caffe, net224):
    _, text = generate(ARCH)
    assert_caffe_allocates_the_inferred_shapes(net224, text)
