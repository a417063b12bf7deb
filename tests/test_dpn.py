"""DPN, the dual-path family: blocks that carry two tensors (golden comparison of DPN-92 against
the published file, the other depths against independent parameter counts and the paper's
FLOPs), and DPN-92 in real Caffe against the published file with the same weights."""
from __future__ import annotations

import numpy as np
import pytest

from archc.ir import infer_shapes
from archc.runtime import weights
from archc.runtime.loader import load_net_text
from golden import assert_matches, generate

# depth: trainable parameters of the same networks as ported to PyTorch (pretrained-models),
# and the paper's multiply-adds of convolutions + classifier (Table 1 of Chen et al.; DPN-68
# and DPN-107 from the authors' release notes), in billions.
FAMILY = {68: (12_611_602, 2.3), 92: (37_668_392, 6.5), 98: (61_570_728, 11.7),
          107: (86_917_800, 18.3), 131: (79_254_504, 16.0)}


def test_dpn92_equals_the_published_file(reference_cls):
    _, text = generate("dpn.arch", depth=92)
    assert_matches(text, reference_cls / "dpn" / "deploy_dpn92.prototxt")


@pytest.mark.parametrize("depth", FAMILY)
def test_every_depth_has_the_published_size(depth):
    trainable, gmacs = FAMILY[depth]
    net, _ = generate("dpn.arch", depth=depth)
    shaped = infer_shapes(net)
    assert sum(e.params for e in shaped.layers if e.layer.type != "BatchNorm") == trainable
    macs = sum(e.macs for e in shaped.layers if e.layer.type in ("Convolution", "InnerProduct"))
    assert macs / 1e9 == pytest.approx(gmacs, abs=0.05)
    assert shaped.layers[-1].output == (1, 1000)


def test_each_block_passes_a_residual_and_a_dense_path():
    net, _ = generate("dpn.arch", depth=92)
    layers = {layer.name: layer for layer in net.layers}
    assert layers["dpn2_conv3_Slice"].tops == ("dpn2_conv3_split1", "dpn2_conv3_split2")
    assert layers["dpn2_elewise"].bottoms == ("dpn1_elewise", "dpn2_conv3_split1")
    assert layers["dpn2_concat"].bottoms == ("dpn1_concat", "dpn2_conv3_split2")
    assert layers["dpn3_concat_input"].bottoms == ("dpn2_elewise", "dpn2_concat")
    # the first block of a stage projects both paths from the joined input
    assert layers["dpn4_match_bn"].bottoms == ("dpn4_concat_input",)
    assert layers["dpn4_elewise"].bottoms == ("dpn4_match_conv_split1", "dpn4_conv3_split1")


def test_dpn92_runs_in_caffe_as_the_published_file_does(caffe, reference_cls, tmp_path):
    net, text = generate("dpn.arch", depth=92)
    path = tmp_path / "dpn92.caffemodel"
    weights.write_caffemodel(path, weights.initial_weights(infer_shapes(net), seed=3))
    published = (reference_cls / "dpn" / "deploy_dpn92.prototxt").read_text()
    image = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    outputs = []
    for prototxt in (text, published):
        caffe_net = load_net_text(prototxt, "<dpn92>", path).net
        caffe_net.blobs["data"].data[...] = image
        outputs.append(caffe_net.forward()["prob"].copy())
    assert np.abs(outputs[0] - outputs[1]).max() == 0


def test_every_layer_of_a_block_records_its_call_even_with_several_tops():
    net, _ = generate("dpn.arch", depth=92)
    for layer in net.layers:
        if layer.name.startswith("dpn"):
            assert layer.call_path, layer.name
            if layer.type == "Slice":
                assert layer.call_path[-1].name == "split_at", layer.name
