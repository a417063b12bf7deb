"""ResNet-v1 (the original MSRA release) against the published deploy files and the paper."""
import re

import pytest

from archc.analysis.diff import normalise
from archc.codegen.parse import read_prototxt
from golden import generate, output_shape
from archc.ir.net import infer_shapes


def block_of(name: str) -> str:
    """The block a v1 layer belongs to: res4b22_branch2a, bn4b22_branch2a -> 4b22."""
    return re.match(r"(?:res|bn|scale)(\d[a-z]\d*)", name).group(1)


def test_resnet152_extends_resnet101_by_its_naming_scheme(reference_cls):
    """ResNet-152 (stages 3, 8, 36, 3) is ResNet-101 (3, 4, 23, 3) with longer res3 and res4:
    every published ResNet-101 layer reappears unchanged, and the new blocks continue the
    numbering of those stages (res3b4..res3b7, res4b23..res4b35)."""
    reference = reference_cls / "resnet" / "deploy_resnet101.prototxt"
    resnet101 = normalise(read_prototxt(reference.read_text(), str(reference)))
    _, text = generate("resnet_v1.arch", depth=152)
    resnet152 = normalise(read_prototxt(text, "<generated>"))
    for name, layer in resnet101.layers.items():
        assert (resnet152.layers[name].type, resnet152.layers[name].fields) == (layer.type, layer.fields), name
    new_blocks = {f"3b{i}" for i in range(4, 8)} | {f"4b{i}" for i in range(23, 36)}
    added = set(resnet152.layers) - set(resnet101.layers)
    assert {block_of(name) for name in added} == new_blocks
    # 13 layers per identity bottleneck: 3 x (conv, BN, Scale), 2 ReLUs, the sum and its ReLU
    assert len(added) == 13 * len(new_blocks)


def test_resnet152_stages_and_stem():
    net, _ = generate("resnet_v1.arch", depth=152)
    blocks = [layer.name for layer in net.layers if layer.type == "Eltwise"]
    assert len(blocks) == 3 + 8 + 36 + 3
    assert blocks[:4] == ["res2a", "res2b", "res2c", "res3a"]
    assert blocks[-5:] == ["res4b34", "res4b35", "res5a", "res5b", "res5c"]
    layers = {layer.name: layer for layer in net.layers}
    assert layers["conv1"].op.bias_term is False  # only ResNet-50's stem has a bias
    # the stride sits on the first 1x1 convolution of the branch and on the projection
    for stage in "345":
        assert layers[f"res{stage}a_branch2a"].op.stride_h == 2
        assert layers[f"res{stage}a_branch1"].op.stride_h == 2
        assert layers[f"res{stage}a_branch2b"].op.stride_h == 1


# Multiply-adds (billions) from He et al. 2016, Table 1; parameters (millions) as commonly
# reported for these nets. Caffe also stores BatchNorm's running statistics, and the paper
# rounds, hence the tolerances.
@pytest.mark.parametrize("depth, params_m, gmacs", [(50, 25.6, 3.8), (101, 44.5, 7.6), (152, 60.2, 11.3)])
def test_complexity_matches_the_paper(depth, params_m, gmacs):
    net, _ = generate("resnet_v1.arch", depth=depth)
    shaped = infer_shapes(net)
    params = sum(layer.params for layer in shaped.layers)
    macs = sum(layer.macs for layer in shaped.layers)
    assert params / 1e6 == pytest.approx(params_m, rel=0.01)
    assert macs / 1e9 == pytest.approx(gmacs, rel=0.03)


def test_classes_set_the_classifier():
    net, _ = generate("resnet_v1.arch", depth=50, classes=10)
    classifier = [layer for layer in net.layers if layer.type == "InnerProduct"]
    assert [(layer.name, layer.op.num_output) for layer in classifier] == [("fc10", 10)]
    assert output_shape("resnet_v1.arch", depth=50, classes=10) == (1, 10)
