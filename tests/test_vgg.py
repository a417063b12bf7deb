"""VGG against the published vgg16(-bn)-pytorch, the paper's Table 1 and torchvision's parameter
counts; the held-back sources (tf, dsd) and depths compile, infer and run in Caffe."""
import pytest

from archc.ir.net import infer_shapes
from golden import (assert_caffe_allocates_the_inferred_shapes, assert_matches,
                    assert_only_input_size_changes, generate, layers_by_name, output_shape)

ARCH = "vgg.arch"

# depth: 3x3 convolutions per stage (Table 1: A, B, D, E), and torchvision's trainable parameters
# of vggNN and vggNN_bn (independent of the paper's table and of archc).
FAMILY = {
    11: ([1, 1, 2, 2, 2], 132_863_336, 132_868_840),
    13: ([2, 2, 2, 2, 2], 133_047_848, 133_053_736),
    16: ([2, 2, 3, 3, 3], 138_357_544, 138_365_992),
    19: ([2, 2, 4, 4, 4], 143_667_240, 143_678_248),
}


@pytest.mark.parametrize("bn, published", [("false", "deploy_vgg16-pytorch.prototxt"),
                                           ("true", "deploy_vgg16bn-pytorch.prototxt")])
def test_generated_equals_published(reference_cls, bn, published):
    _, text = generate(ARCH, depth=16, bn=bn)
    assert_matches(text, reference_cls / "vgg" / published)


def trainable(net) -> int:
    """Parameters without BatchNorm's stored statistics (Scale's are torchvision's BN weights)."""
    return sum(row.params for row in infer_shapes(net).layers if row.layer.type != "BatchNorm")


@pytest.mark.parametrize("depth", FAMILY)
@pytest.mark.parametrize("bn", ["false", "true"])
def test_stages_follow_table_1_and_parameters_match_torchvision(depth, bn):
    convs, plain, with_bn = FAMILY[depth]
    net, _ = generate(ARCH, depth=depth, bn=bn)
    names = [layer.name for layer in net.layers if layer.type == "Convolution"]
    assert names == [f"conv{s + 1}_{i}" for s, count in enumerate(convs) for i in range(1, count + 1)]
    assert trainable(net) == (with_bn if bn == "true" else plain)


def test_batchnorm_follows_each_biased_convolution_before_its_relu():
    net, _ = generate(ARCH, depth=13, bn="true")
    layers = net.layers
    for i, layer in enumerate(layers):
        if layer.type == "Convolution":
            assert layer.op.bias_term
            bn, scale, relu = layers[i + 1:i + 4]
            s, n = layer.name[4:].split("_")
            assert [bn.name, scale.name, relu.name] == [
                f"{layer.name}_bn", f"{layer.name}_scale", f"relu{s}_{n}"]


# The zoo's other VGGs (held back): every one compiles to a (1, classes) output.
HELD_BACK = [{"depth": 13}, {"depth": 13, "bn": "true"}, {"depth": 19}, {"depth": 19, "bn": "true"},
             {"depth": 16, "source": "tf"}, {"depth": 16, "source": "dsd"}]


@pytest.mark.parametrize("params", HELD_BACK, ids=lambda p: "-".join(str(v) for v in p.values()))
def test_held_back_variants_infer_to_the_classes(params):
    assert output_shape(ARCH, **params) == (1, 1000)


def classifier_spelling(source: str) -> list[tuple[str, str]]:
    net, _ = generate(ARCH, source=source)
    return [(layer.name, layer.type) for layer in net.layers[net.layers.index(
        layers_by_name(net)["pool5"]) + 1:]]


def test_sources_differ_only_in_the_classifier_spelling():
    assert classifier_spelling("pytorch") == [
        ("fc6", "InnerProduct"), ("relu6", "ReLU"), ("dropout6", "Dropout"),
        ("fc7", "InnerProduct"), ("relu7", "ReLU"), ("dropout7", "Dropout"),
        ("classifier", "InnerProduct"), ("prob", "Softmax")]
    # Caffe's VGG-16, which DSD retrained, names its dropouts and last layer its own way
    assert classifier_spelling("dsd") == [
        ("fc6", "InnerProduct"), ("relu6", "ReLU"), ("drop6", "Dropout"),
        ("fc7", "InnerProduct"), ("relu7", "ReLU"), ("drop7", "Dropout"),
        ("fc8", "InnerProduct"), ("prob", "Softmax")]
    # TF-slim's fully connected layers are convolutions, then the 1x1 map is reshaped away
    assert classifier_spelling("tf") == [
        ("fc6", "Convolution"), ("relu6", "ReLU"), ("dropout6", "Dropout"),
        ("fc7", "Convolution"), ("relu7", "ReLU"), ("dropout7", "Dropout"),
        ("classifier", "Convolution"), ("reshape", "Reshape"), ("prob", "Softmax")]
    pytorch, _ = generate(ARCH)
    for source in ("tf", "dsd"):
        net, _ = generate(ARCH, source=source)
        # the same weights, spelled differently: as many, and the same convolutions before them
        assert trainable(net) == FAMILY[16][1]
        assert net.layers[:31] == pytorch.layers[:31]


def test_tf_fc6_is_a_7x7_convolution_over_pool5():
    net, _ = generate(ARCH, source="tf")
    rows = {row.layer.name: row for row in infer_shapes(net).layers}
    assert rows["pool5"].outputs[0] == (1, 512, 7, 7)
    assert (rows["fc6"].layer.op.kernel_h, rows["fc6"].outputs[0]) == (7, (1, 4096, 1, 1))
    assert rows["fc7"].layer.op.kernel_h == rows["classifier"].layer.op.kernel_h == 1


@pytest.mark.parametrize("params, size", [({"depth": 16}, 320), ({"depth": 19, "bn": "true"}, 320),
                                          ({"depth": 16, "source": "dsd"}, 320),
                                          ({"depth": 16, "source": "tf"}, 208)])
def test_size_changes_only_the_input_shape(params, size):
    assert_only_input_size_changes(ARCH, size, **params)


def test_classes_sets_the_classifier_width():
    assert output_shape(ARCH, classes=10) == (1, 10)
    assert output_shape(ARCH, source="dsd", classes=10) == (1, 10)
    assert output_shape(ARCH, source="tf", classes=10) == (1, 10)


def test_caffe_allocates_the_inferred_blobs_and_parameters(caffe):
    # a small input keeps fc6 (and the test) small
    net, text = generate(ARCH, depth=13, bn="true", size=64, classes=10)
    assert_caffe_allocates_the_inferred_shapes(net, text)
