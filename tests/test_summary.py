"""`archc summary`: totals against published facts, block grouping (by the .arch file's blocks and
loops, or by name for a prototxt), activation memory, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from archc.analysis.structure import block_of_name
from archc.analysis.summary import summarise
from archc.cli.cmd_summary import main as summary_main
from archc.codegen.parse import import_net
from archc.ir import infer_shapes
from golden import generate

REPO = Path(__file__).resolve().parent.parent


def summary_of(path: Path):
    return summarise(infer_shapes(import_net(path.read_text(), str(path))))


def conv_and_fc_macs(summary) -> int:
    return sum(row.macs for row in summary.rows if row.type in ("Convolution", "InnerProduct"))


def test_resnet50_totals(reference_cls):
    summary = summary_of(reference_cls / "resnet" / "deploy_resnet50.prototxt")
    # Learnable weights of ResNet-50 are 25,557,032 (the count every framework reports); this
    # Caffe file also gives conv1 a bias (64) and BatchNorm stores mean and variance per channel
    # (2 x 26,560) plus one scale factor per layer (53): the blobs Caffe allocates.
    assert summary.total.params == 25_557_032 + 64 + 2 * 26_560 + 53
    # He et al. quote 3.8 GFLOPs (multiply-adds) for convolutions + fc; the often-quoted 4.1 G is
    # "ResNet-50 v1.5", which moves the stride from the 1x1 to the 3x3 convolution.
    assert conv_and_fc_macs(summary) == pytest.approx(3.858e9, rel=1e-3)
    assert summary.total.macs == pytest.approx(3.887e9, rel=1e-3)
    assert summary.total.layers == 228


def test_resnext50_totals(reference_cls):
    summary = summary_of(reference_cls / "resnext" / "deploy_resnext50-32x4d.prototxt")
    # 25,028,904 learnable weights (Xie et al.: 25.0M) + BatchNorm statistics (2 x 34,112 + 53).
    assert summary.total.params == 25_028_904 + 2 * 34_112 + 53
    assert conv_and_fc_macs(summary) == pytest.approx(4.230e9, rel=1e-3)  # paper: 4.2 GFLOPs


def test_in_place_layers_add_no_activation_memory(reference_cls):
    summary = summary_of(reference_cls / "resnet" / "deploy_resnet50.prototxt")
    rows = {row.name: row for row in summary.rows}
    assert rows["data"].activations == 3 * 224 * 224
    assert rows["conv1"].activations == 64 * 112 * 112
    assert rows["bn_conv1"].activations == rows["conv1_relu"].activations == 0
    assert summary.total.activations == sum(row.activations for row in summary.rows)
    assert summary.total.activation_bytes == 4 * summary.total.activations


def test_reshaped_views_add_no_activation_memory(reference_cls):
    # DenseNet's classifier_reshape is a view of the classifier's blob in Caffe, not a copy
    summary = summary_of(reference_cls / "densenet" / "deploy_densenet121.prototxt")
    rows = {row.name: row for row in summary.rows}
    assert rows["classifier"].activations == 1000 and rows["classifier_reshape"].activations == 0


def test_split_tops_share_their_bottom_and_silence_writes_nothing():
    text = ('input: "data" input_shape { dim: 1 dim: 8 dim: 4 dim: 4 }\n'
            'layer { name: "copies" type: "Split" bottom: "data" top: "a" top: "b" }\n'
            'layer { name: "quiet" type: "Silence" bottom: "a" bottom: "b" }\n')
    rows = {row.name: row for row in summarise(infer_shapes(import_net(text))).rows}
    assert (rows["copies"].output, rows["copies"].more_outputs) == ((8, 4, 4), ((8, 4, 4),))
    assert rows["copies"].activations == 0
    assert (rows["quiet"].output, rows["quiet"].activations) == ((), 0)


def test_blocks_follow_the_paper(reference_cls):
    resnet = summary_of(reference_cls / "resnet" / "deploy_resnet50.prototxt")
    rows = {row.name: row for row in resnet.rows}
    # In-place BatchNorm/Scale/ReLU join the layer that wrote their blob, whatever their name.
    assert rows["bn2a_branch1"].block == rows["scale2a_branch1"].block == "res2a"
    assert rows["bn_conv1"].block == "conv1"
    assert [block.name for block in resnet.blocks][:5] == ["data", "conv1", "pool1", "res2a", "res2b"]
    assert sum(block.params for block in resnet.blocks) == resnet.total.params
    assert sum(block.macs for block in resnet.blocks) == resnet.total.macs


@pytest.mark.parametrize("name, block", [
    ("resx3_conv1_bn", "resx3"), ("res2a_branch2a", "res2a"), ("conv1_3x3_s2", "conv1"),
    ("inception_a1_1x1", "inception_a1"), ("reduction_a_3x3_2_reduce", "reduction_a"),
    ("inception_resnet_v2_a1_1x1", "inception_resnet_v2_a1"), ("inception_stem2_1x7", "inception_stem2"),
    ("dense12_conv1", "dense12"), ("pool_ave", "pool_ave"), ("prob", "prob"), ("3x3_odd", "3x3_odd"),
])
def test_block_of_name(name, block):
    assert block_of_name(name) == block


def test_uncut_names_join_a_block_they_extend(reference_cls):
    summary = summary_of(reference_cls / "inception" / "deploy_inception-v4.prototxt")
    rows = {row.name: row for row in summary.rows}
    assert rows["reduction_a_concat"].block == rows["reduction_a_3x3"].block == "reduction_a"
    assert rows["classifier"].block == "classifier"


def test_an_arch_model_groups_by_its_block_calls_and_loops():
    net, _ = generate("resnext.arch", depth=50, card=32)
    summary = summarise(infer_shapes(net))
    blocks = [(block.depth, block.name, block.layers) for block in summary.blocks]
    assert blocks[:6] == [(0, "data", 0), (0, "conv1", 4), (0, "pool1", 1),
                          (0, "for stage=0, count=3", 42), (1, "resx1", 16), (1, "resx2", 13)]
    assert blocks[-3:] == [(0, "pool_ave", 1), (0, "classifier", 1), (0, "prob", 1)]
    # a stage holds its bottlenecks; the top-level blocks add up to the net
    stages = [block for block in summary.blocks if block.name.startswith("for stage=")]
    assert [block.layers for block in stages] == [42, 55, 81, 42]
    assert sum(block.macs for block in summary.blocks if block.depth == 0) == summary.total.macs
    resx4 = next(block for block in summary.blocks if block.name == "resx4")
    assert resx4.call == "bottleneck(n=4, inner=256, out=512, stride=2)"
    rows = {row.name: row for row in summary.rows}
    assert rows["resx4_conv2_bn"].block == rows["resx4_elewise_relu"].block == "resx4"


def test_a_block_call_that_makes_the_whole_net_groups_as_the_net_itself(tmp_path):
    """googlenet.arch's body is a library block (inception_v1.arch --source dsd makes the same
    net): one group of everything would say nothing."""
    from test_language import compile_text
    blocks = "block stage(name) { conv(8, 3) as \"{name}_conv\"  relu as \"{name}_relu\" }\n"
    body = 'conv(8, 3) as "stem"  stage("s1")  stage("s2")  fc(10) as "fc"'
    wrapped = compile_text(tmp_path, blocks + f"block body() {{ {body} }}\n"
                           f'net {{ input "data" [1, 3, 16, 16]  body() }}')
    inline = compile_text(tmp_path, blocks + f'net {{ input "data" [1, 3, 16, 16]  {body} }}')
    groups = [[(block.depth, block.name, block.layers) for block in summarise(infer_shapes(net)).blocks]
              for net in (wrapped, inline)]
    assert groups[0] == groups[1] == [(0, "data", 0), (0, "stem", 1), (0, "s1", 2), (0, "s2", 2),
                                      (0, "fc", 1)]


def test_blocks_without_a_shared_name_are_named_by_their_call():
    net, _ = generate("densenet.arch", depth=121)
    names = [block.name for block in summarise(infer_shapes(net)).blocks]
    # the transition's layers (dense6_concat_bn, conv2, pool2) share no name
    assert names[:7] == ["data", "conv1", "pool1", "for b=0, count=6", "dense1", "dense2", "dense3"]
    assert names[9:12] == ["dense6", "transition(n=2)", "for b=1, count=12"]
    net, _ = generate("inception_v4.arch")
    blocks = summarise(infer_shapes(net)).blocks
    assert [block.name for block in blocks][:4] == ["data", "stem()", "inception_a1", "inception_a2"]
    assert {block.depth for block in blocks} == {0}  # loops of one block call each add no level


def test_cli_table_nests_a_loops_blocks_and_names_their_calls(capsys):
    assert summary_main([str(REPO / "archs" / "resnext.arch"), "--depth", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("for stage=1, count=4 ") for line in lines)
    resx4 = next(line for line in lines if line.startswith("  resx4 "))
    assert resx4.endswith("  bottleneck(n=4, inner=256, out=512, stride=2)")


def test_cli_json_matches_the_table_totals(reference_cls, capsys):
    path = reference_cls / "resnext" / "deploy_resnext50-32x4d.prototxt"
    assert summary_main([str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["params"] == summary_of(path).total.params
    assert data["layers"][1]["output"] == [64, 112, 112]
    resx1 = data["blocks"][3]
    assert (resx1["name"], resx1["depth"], resx1["call"], resx1["layers"]) == ("resx1", 0, "", 16)
    assert summary_main([str(path)]) == 0
    assert f"{data['total']['macs']:,} MACs" in capsys.readouterr().out


def test_cli_arch_file_agrees_with_the_published_prototxt(reference_cls, capsys):
    arch = REPO / "archs" / "resnext.arch"
    if not arch.is_file():
        pytest.skip("archs/resnext.arch is not in the tree yet")
    assert summary_main([str(arch), "--depth", "50", "--card", "32", "--json"]) == 0
    generated = json.loads(capsys.readouterr().out)["total"]
    published = summary_of(reference_cls / "resnext" / "deploy_resnext50-32x4d.prototxt").total
    assert (generated["params"], generated["macs"]) == (published.params, published.macs)


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert summary_main([str(tmp_path / "missing.prototxt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    model = tmp_path / "m.prototxt"
    model.write_text('input: "x" input_shape { dim: 1 dim: 1 dim: 2 dim: 2 }\n')
    assert summary_main([str(model), "--depth", "3"]) == 2
    assert "apply only to .arch files" in capsys.readouterr().err
    assert summary_main([]) == 2


def test_layers_with_several_tops_show_each_shape_and_count_each_blob():
    text = ('input: "data" input_shape { dim: 1 dim: 8 dim: 4 dim: 4 }\n'
            'layer { name: "cut" type: "Slice" bottom: "data" top: "a" top: "b" '
            'slice_param { slice_point: 3 } }\n'
            'layer { name: "pool" type: "Pooling" bottom: "b" top: "p" top: "mask" '
            'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')
    rows = {row.name: row for row in summarise(infer_shapes(import_net(text))).rows}
    assert (rows["cut"].output, rows["cut"].more_outputs) == ((3, 4, 4), ((5, 4, 4),))
    assert rows["cut"].activations == 8 * 4 * 4
    assert rows["pool"].activations == 2 * 5 * 2 * 2  # the output and its mask
    alone = ('input: "data" input_shape { dim: 1 dim: 8 dim: 4 dim: 4 }\n'
             'layer { name: "cut" type: "Slice" bottom: "data" top: "a" }\n')
    # one top: Caffe shares the bottom's memory
    assert summarise(infer_shapes(import_net(alone))).rows[1].activations == 0
