"""DenseNet-BC (golden comparison: test_golden.py): every depth against the paper's Table 1."""
import pytest

from golden import generate, output_shape
from archc.ir.net import infer_shapes

# depth: (growth rate k, dense layers per block) from the paper's Table 1, then two facts
# known independently of it: the width of the final features and the trainable parameter
# count of the same network in torchvision (BatchNorm's stored statistics are not trainable).
FAMILY = {
    121: (32, [6, 12, 24, 16], 1024, 7_978_856),
    161: (48, [6, 12, 36, 24], 2208, 28_681_000),
    169: (32, [6, 12, 32, 32], 1664, 14_149_480),
    201: (32, [6, 12, 48, 32], 1920, 20_013_928),
}


def dense_layers_per_block(names: list[str]) -> list[int]:
    """Dense layers between consecutive pooling layers (pool1 .. pool5)."""
    counts = []
    for name in names:
        if name.startswith("pool"):
            counts.append(0)
        elif name.endswith("_concat"):
            counts[-1] += 1
    return counts[:-1]


@pytest.mark.parametrize("depth", FAMILY)
def test_blocks_and_names_follow_the_paper(depth):
    growth, blocks, _, _ = FAMILY[depth]
    net, _ = generate("densenet.arch", depth=depth)
    names = [layer.name for layer in net.layers]
    layers = {layer.name: layer for layer in net.layers}
    total = sum(blocks)

    assert dense_layers_per_block(names) == blocks
    # dense layers are numbered across the whole net, not per block
    assert [n for n in names if n.endswith("_concat")] == [f"dense{n}_concat" for n in range(1, total + 1)]
    # each block starts from the pooling before it: pool1, then the transitions' pool2 .. pool4
    for b in range(len(blocks)):
        first = sum(blocks[:b]) + 1
        assert layers[f"dense{first}_concat"].bottoms == (f"pool{b + 1}", f"dense{first}_conv2")
    assert names[:5] == ["conv1", "conv1_bn", "conv1_scale", "conv1_relu", "pool1"]
    assert names[-7:] == [f"dense{total}_concat_bn", f"dense{total}_concat_scale",
                          f"dense{total}_concat_relu", "pool5", "classifier", "classifier_reshape", "prob"]
    # stem 2k, bottleneck 4k, k new maps per dense layer
    assert layers["conv1"].op.num_output == 2 * growth
    assert {layers[f"dense{n}_conv1"].op.num_output for n in range(1, total + 1)} == {4 * growth}
    assert {layers[f"dense{n}_conv2"].op.num_output for n in range(1, total + 1)} == {growth}


@pytest.mark.parametrize("depth", FAMILY)
def test_widths_and_parameters_match_independent_counts(depth):
    _, _, features, trainable = FAMILY[depth]
    net, _ = generate("densenet.arch", depth=depth)
    shaped = infer_shapes(net)
    by_name = {entry.layer.name: entry for entry in shaped.layers}
    for transition in ("conv2", "conv3", "conv4"):  # compression 0.5
        entry = by_name[transition]
        assert entry.output[1] == entry.inputs[0][1] // 2
    assert by_name["pool5"].output == (1, features, 1, 1)
    assert sum(entry.params for entry in shaped.layers if entry.layer.type != "BatchNorm") == trainable


def test_classes_sets_the_classifier_convolution():
    net, _ = generate("densenet.arch", depth=169, classes=10)
    classifier = next(layer for layer in net.layers if layer.name == "classifier")
    assert classifier.op.num_output == 10
    assert output_shape("densenet.arch", depth=169, classes=10) == (1, 10)
