"""Xception against the published xception, the paper's Figure 5 and Keras' parameter counts."""
import pytest

from archc.ir.net import infer_shapes
from golden import (assert_caffe_allocates_the_inferred_shapes, assert_matches,
                    assert_only_input_size_changes, generate, layers_by_name, output_shape)

ARCH = "xception.arch"
# keras.applications.Xception: 22,855,952 trainable parameters (BatchNorm's gamma and beta
# included) and 54,528 non-trainable ones (BatchNorm's moving mean and variance).
KERAS_TRAINABLE, KERAS_STATISTICS = 22_855_952, 54_528


@pytest.fixture(scope="module")
def net299():
    net, _ = generate(ARCH)
    return net


def test_generated_equals_published(reference_cls):
    _, text = generate(ARCH)
    assert_matches(text, reference_cls / "inception" / "deploy_xception.prototxt")


def test_parameters_match_keras(net299):
    rows = infer_shapes(net299).layers
    batchnorms = [row for row in rows if row.layer.type == "BatchNorm"]
    assert sum(row.params for row in rows if row.layer.type != "BatchNorm") == KERAS_TRAINABLE
    # Caffe's BatchNorm adds one moving-average factor per layer to the statistics
    assert sum(row.params for row in batchnorms) == KERAS_STATISTICS + len(batchnorms)


def test_flows_follow_figure_5(net299):
    layers = layers_by_name(net299)
    shapes = {row.layer.name: row.outputs[0] for row in infer_shapes(net299).layers}
    sums = [layer.name for layer in net299.layers if layer.type == "Eltwise"]
    assert sums == [f"xception{n}_elewise" for n in range(1, 13)]
    # entry flow: three strided modules with projections; exit flow: one more
    assert [n for n in range(1, 13) if f"xception{n}_match_conv" in layers] == [1, 2, 3, 12]
    assert [shapes[f"xception{n}_elewise"] for n in (1, 2, 3, 11, 12)] == [
        (1, 128, 74, 74), (1, 256, 37, 37), (1, 728, 19, 19), (1, 728, 19, 19), (1, 1024, 10, 10)]
    # middle flow: eight identity modules, each three separables, reading the module's input raw
    for n in range(4, 12):
        assert layers[f"xception{n}_relu"].tops == (f"xception{n}_relu",)
        assert f"xception{n - 1}_elewise" in layers[f"xception{n}_elewise"].bottoms
    assert shapes["conv4_2"] == (1, 2048, 10, 10)


def test_separable_convolutions_are_depthwise_then_pointwise(net299):
    layers = layers_by_name(net299)
    for name, c_in, c_out in [("xception1_conv1", 64, 128), ("xception7_conv2", 728, 728),
                              ("conv4", 1536, 2048)]:
        depthwise, pointwise = layers[f"{name}_1"].op, layers[f"{name}_2"].op
        assert (depthwise.group, depthwise.num_output, depthwise.kernel_h) == (c_in, c_in, 3)
        assert (pointwise.group, pointwise.num_output, pointwise.kernel_h) == (1, c_out, 1)
        assert layers[f"{name}_bn"].bottoms == (f"{name}_2",)


@pytest.mark.parametrize("size", [224, 256, 299, 320, 331])
def test_pooling_pads_keep_the_shortcuts_aligned_at_any_size(size):
    # Keras' "same" pooling: a pad only on odd sides, so every strided module adds up
    net, _ = generate(ARCH, size=size)
    assert infer_shapes(net).layers[-1].outputs[0] == (1, 1000)
    pads = [layer.op.pad_h for layer in net.layers if layer.name.endswith("_pool")]
    shapes = {row.layer.name: row.inputs[0] for row in infer_shapes(net).layers}
    assert pads == [shapes[layer.name][2] % 2 for layer in net.layers if layer.name.endswith("_pool")]


def test_xception_dw_is_the_same_net_with_the_forks_depthwise_type():
    # the zoo's xception-dw uses the Caffe fork's ConvolutionDepthwise
    plain, _ = generate(ARCH)
    depthwise, text = generate(ARCH, depthwise="true")
    pairs = list(zip(plain.layers, depthwise.layers))
    changed = [(a.name, b.type) for a, b in pairs if a.type != b.type]
    assert changed == [(a.name, "ConvolutionDepthwise") for a, _ in pairs
                       if a.type == "Convolution" and a.op.group > 1]
    shaped_plain, shaped_dw = infer_shapes(plain), infer_shapes(depthwise)
    assert shaped_dw.blobs == shaped_plain.blobs
    assert [e.params for e in shaped_dw.layers] == [e.params for e in shaped_plain.layers]
    assert sum(e.macs for e in shaped_dw.layers) == sum(e.macs for e in shaped_plain.layers)
    assert text.count('type: "ConvolutionDepthwise"') == 34


def test_size_changes_only_the_input_shape():
    assert_only_input_size_changes(ARCH, 395)  # the same pads as at 299


def test_classes_sets_the_classifier_width():
    assert output_shape(ARCH, classes=10) == (1, 10)


def test_caffe_allocates_the_inferred_blobs_and_parameters(caffe):
    net, text = generate(ARCH, size=99)
    assert_caffe_allocates_the_inferred_shapes(net, text)
