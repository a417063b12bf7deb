"""ResNet-38 (model A of Wu et al., "Wider or Deeper") against the published resnet38a and the
paper's blocks B2 .. B7."""
from archc.ir.net import infer_shapes
from golden import (assert_caffe_allocates_the_inferred_shapes, assert_matches,
                    assert_only_input_size_changes, generate, layers_by_name, output_shape)

ARCH = "resnet38a.arch"
# (units, output width, unit kind) of B2 .. B7
BLOCKS = [(3, 128, "basic"), (3, 256, "basic"), (6, 512, "basic"), (3, 1024, "basic"),
          (1, 2048, "bottleneck"), (1, 4096, "bottleneck")]


def test_generated_equals_published(reference_cls):
    _, text = generate(ARCH)
    assert_matches(text, reference_cls / "resnet-v2" / "deploy_resnet38a.prototxt")


def test_38_weight_layers_in_17_units():
    net, _ = generate(ARCH)
    weighted = [layer for layer in net.layers if layer.type in ("Convolution", "InnerProduct")
                and not layer.name.endswith("_match_conv")]
    assert len(weighted) == 38
    assert [layer.name for layer in net.layers if layer.type == "Eltwise"] == [
        f"res{n}_eletwise" for n in range(1, 18)]


def test_blocks_widths_and_pooling():
    net, _ = generate(ARCH)
    layers = layers_by_name(net)
    shapes = {row.layer.name: row.outputs[0] for row in infer_shapes(net).layers}
    first, side = 1, 112
    for block, (units, width, kind) in enumerate(BLOCKS):
        # the first unit of every block projects the pre-activated input; the others add the raw sum
        assert layers[f"res{first}_match_conv"].bottoms == (f"res{first}_bn",)
        for n in range(first + 1, first + units):
            assert f"res{n}_match_conv" not in layers
            assert f"res{n - 1}_eletwise" in layers[f"res{n}_eletwise"].bottoms
        last = first + units - 1
        assert shapes[f"res{last}_eletwise"] == (1, width, side, side)
        assert (f"res{first}_conv3" in layers) == (kind == "bottleneck")
        # max pooling halves the side after B2 .. B5
        if block < 4:
            assert layers[f"pool{block + 2}"].bottoms == (f"res{last}_eletwise",)
            side //= 2
        first += units
    assert [layer.name for layer in net.layers[-6:]] == [
        "res17_eletwise_bn", "res17_eletwise_scale", "res17_eletwise_relu", "pool_ave",
        "classifier", "prob"]
    assert layers["res17_eletwise_bn"].tops == ("res17_eletwise",)  # in place, unlike the units'


def test_size_changes_only_the_input_shape():
    assert_only_input_size_changes(ARCH, 320)


def test_classes_sets_the_classifier_width():
    assert output_shape(ARCH, classes=10) == (1, 10)


def test_caffe_allocates_the_inferred_blobs_and_parameters(caffe):
    net, text = generate(ARCH, size=32, classes=10)  # 105M parameters whatever the size
    assert_caffe_allocates_the_inferred_shapes(net, text)
