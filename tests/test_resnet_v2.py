"""ResNet-v2 (pre-activation) against the published ResNet-101-v2 and the zoo's published facts."""
import re

import pytest

from archc.analysis.diff import normalise
from archc.codegen.parse import read_prototxt
from golden import generate, output_shape
from archc.ir.net import infer_shapes

STAGES = {101: [3, 4, 23, 3], 152: [3, 8, 36, 3], 269: [3, 30, 48, 8]}


def block_numbers(depth: int) -> list[list[int]]:
    """The global block numbers (res1, res2, ...) of each stage, numbered across the net."""
    numbers, first = [], 1
    for count in STAGES[depth]:
        numbers.append(list(range(first, first + count)))
        first += count
    return numbers


@pytest.mark.parametrize("depth", [152, 269])
def test_deeper_nets_extend_resnet101_stage_by_stage(reference_cls, depth):
    """Every published ResNet-101-v2 layer, renumbered to the same position within its stage,
    reappears with the same type and parameters; the extra layers are whole identity blocks."""
    reference = reference_cls / "resnet-v2" / "deploy_resnet101-v2.prototxt"
    resnet101 = normalise(read_prototxt(reference.read_text(), str(reference)))
    _, text = generate("resnet_v2.arch", depth=depth)
    deeper = normalise(read_prototxt(text, "<generated>"))
    renumber = {old: new for olds, news in zip(block_numbers(101), block_numbers(depth))
                for old, new in zip(olds, news)}
    last_block = sum(STAGES[depth])

    def renamed(name: str) -> str:
        match = re.fullmatch(r"res(\d+)_(.*)", name)
        if not match:
            return name
        number, rest = int(match.group(1)), match.group(2)
        # the final BN/Scale/ReLU (res33_eletwise_bn...) hangs off the last block
        final = re.fullmatch(r"eletwise_(bn|scale|relu)", rest)
        return f"res{last_block if final else renumber[number]}_{rest}"

    for name, layer in resnet101.layers.items():
        ours = deeper.layers[renamed(name)]
        assert (ours.type, ours.fields) == (layer.type, layer.fields), name
    # 13 layers per identity block: BN, Scale, ReLU; 2 x (conv, BN, Scale, ReLU); conv; sum
    extra_blocks = sum(STAGES[depth]) - 33
    assert len(deeper.layers) - len(resnet101.layers) == 13 * extra_blocks


@pytest.mark.parametrize("depth", [101, 152, 269])
def test_projections_read_the_preactivated_blob_and_identities_the_raw_sum(depth):
    net, _ = generate("resnet_v2.arch", depth=depth)
    layers = {layer.name: layer for layer in net.layers}
    stage_firsts = [numbers[0] for numbers in block_numbers(depth)]
    assert [name for name in layers if name.endswith("_match_conv")] == [
        f"res{n}_match_conv" for n in stage_firsts]
    assert layers["res1_match_conv"].bottoms == ("pool1",)  # the stem already normalised it
    for n in stage_firsts[1:]:
        assert layers[f"res{n}_match_conv"].bottoms == (f"res{n}_bn",)
        assert layers[f"res{n}_match_conv"].op.stride_h == 2
        assert layers[f"res{n}_conv2"].op.stride_h == 2  # v2 strides on the 3x3
    identity = stage_firsts[2] + 1
    assert set(layers[f"res{identity}_eletwise"].bottoms) == {
        f"res{identity - 1}_eletwise", f"res{identity}_conv3"}
    last = sum(STAGES[depth])
    assert [layer.name for layer in net.layers[-6:]] == [
        f"res{last}_eletwise_bn", f"res{last}_eletwise_scale", f"res{last}_eletwise_relu",
        "pool5", "classifier", "prob"]


# The zoo's published caffemodel sizes (MiB, from its README): float32 blobs, plus a little
# for names, so the parameter count Caffe allocates must come within 0.1%.
@pytest.mark.parametrize("depth, caffemodel_mib", [(101, 170.3), (152, 230.2), (269, 390.4)])
def test_parameters_fill_the_published_caffemodel(depth, caffemodel_mib):
    net, _ = generate("resnet_v2.arch", depth=depth)
    params = sum(layer.params for layer in infer_shapes(net).layers)
    assert params * 4 / 2**20 == pytest.approx(caffemodel_mib, rel=0.001)


def test_classes_set_the_classifier_width():
    net, _ = generate("resnet_v2.arch", classes=10)
    assert [(layer.name, layer.op.num_output) for layer in net.layers
            if layer.type == "InnerProduct"] == [("classifier", 10)]
    assert output_shape("resnet_v2.arch", classes=10) == (1, 10)
