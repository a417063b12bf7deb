"""Each layer's call path: the block calls and loop iterations of the .arch file that emitted it,
recorded in the IR without changing the prototxt, and absent from an imported one."""
from __future__ import annotations

from dataclasses import replace

import pytest

from archc.codegen import render
from archc.codegen.parse import import_net
from archc.ir import BLOCK_CALL, LOOP_ITERATION
from golden import generate
from test_language import compile_text, layers

# The model library's table in the README, one command per row of models.
README_MODELS = [
    *[("resnext.arch", {"depth": depth, "card": card}) for depth in (50, 101, 152) for card in (32, 64)],
    ("resnext.arch", {"depth": 50, "card": 1, "width": 128}),
    *[("resnet_v1.arch", {"depth": depth}) for depth in (50, 101, 152)],
    *[("resnet_v2.arch", {"depth": depth}) for depth in (101, 152, 269)],
    *[(arch, {"size": size}) for arch in ("inception_v3.arch", "inception_v4.arch",
                                          "inception_resnet_v2.arch") for size in (299, 395)],
    *[("densenet.arch", {"depth": depth}) for depth in (121, 161, 169, 201)],
]


@pytest.mark.parametrize("arch, params", README_MODELS,
                         ids=[f"{arch[:-5]}{''.join(f'-{v}' for v in params.values())}"
                              for arch, params in README_MODELS])
def test_the_prototxt_is_the_same_with_or_without_call_paths(arch, params):
    net, text = generate(arch, **params)
    assert all(layer.call_path for layer in net.layers[:4]) or arch.startswith("resnet_v")
    stripped = replace(net, layers=[replace(layer, call_path=()) for layer in net.layers])
    assert render(stripped) == text
    for dialect in ("ceil_mode", "round_mode"):
        assert render(net, dialect) == render(stripped, dialect)


def test_block_calls_and_loop_iterations_are_recorded_outermost_first():
    net, _ = generate("resnext.arch", depth=50, card=32)
    by_name = layers(net)
    assert [frame.text for frame in by_name["conv1_relu"].call_path] == [
        'conv_bn(name="conv1", c=64, k=7, stride=2, pad=3)']
    assert by_name["pool1"].call_path == by_name["prob"].call_path == ()
    stage, block, bottleneck, conv_bn = by_name["resx4_conv2_bn"].call_path
    assert (stage.kind, stage.name, stage.values, stage.iteration) == (
        LOOP_ITERATION, "stage, count", (("stage", "1"), ("count", "4")), 1)
    assert (block.text, block.iteration) == ("for b=0", 0)
    assert bottleneck.kind == conv_bn.kind == BLOCK_CALL
    assert bottleneck.text == "bottleneck(n=4, inner=256, out=512, stride=2)"
    assert bottleneck.span.line == 42 and bottleneck.span.path.endswith("archs/resnext.arch")
    assert conv_bn.span.path.endswith("archs/resnext.arch") and conv_bn.span.line == 29
    # the sum and its ReLU belong to the bottleneck itself
    assert by_name["resx4_elewise_relu"].call_path == (stage, block, bottleneck)


def test_branches_keep_the_path_and_equal_calls_stay_apart(tmp_path):
    net = compile_text(tmp_path, """
        block unit(name) { conv(4, 1) as name }
        block pair(p) {
          sum as "{p}_sum" { branch { unit("{p}_a") } branch { unit("{p}_b") } }
        }
        net {
          input "data" [1, 3, 8, 8]
          for x in ["same", "same"] { conv(2, 1) }
          pair("one")
          for k, v in {"t": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]} {
            conv(2, 1) as "long"
          }
        }
    """)
    by_name = layers(net)
    first, second = by_name["conv1"].call_path, by_name["conv2"].call_path
    assert first[0].values == second[0].values == (("x", '"same"'),)
    assert (first[0].iteration, second[0].iteration) == (0, 1) and first != second
    pair, unit = by_name["one_b"].call_path
    assert (pair.text, unit.text) == ('pair(p="one")', 'unit(name="one_b")')
    assert by_name["one_sum"].call_path == (pair,)
    (loop,) = by_name["long"].call_path
    assert loop.values == (("k", '"t"'), ("v", "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1..."))


def test_an_imported_prototxt_has_no_call_paths():
    _, text = generate("densenet.arch", depth=121)
    assert all(layer.call_path == () for layer in import_net(text, "<generated>").layers)
