"""Layer types of Caffe forks, declared in .arch files: compiled, rendered, read back, summarised
and diffed like Caffe's own types; refused, with a message, by what runs the installed Caffe."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from archc import dsl
from archc.codegen import render
from archc.codegen.parse import import_net
from archc.errors import ArchError
from archc.ir import infer_shapes
from archc.model import fork_types, load_model
from archc.runtime.weights import initial_weights
from conftest import reference_root
from test_op_definitions import assert_immutable_value

SQUEEZE_EXCITE = """
    import "lib/forks.arch"
    net {
      input "data" [1, 8, 6, 6]
      conv(8, 3, pad = 1) as "conv"
      let x = current
      avepool(global = true) as "squeeze"
      conv(2, 1) as "down"
      relu as "down_relu"
      conv(8, 1) as "up"
      sigmoid as "gate"
      from [current, x, x]
      Axpy as "axpy"
      ShuffleChannel(group = 2) as "shuffle"
      ConvolutionDepthwise(num_output = 8, kernel_size = 3, stride = 2, pad = 1) as "dw"
      Upsample(scale = 2) as "up2" { branch { } branch { } }
      Interp(height = 5, width = 7) as "resize"
    }
"""


def compile_text(tmp_path, text: str):
    path = tmp_path / "model.arch"
    path.write_text(textwrap.dedent(text))
    return dsl.compile_file(str(path), {})


def test_a_net_with_shipped_fork_layers_compiles_with_their_shape_rules(tmp_path):
    shaped = infer_shapes(compile_text(tmp_path, SQUEEZE_EXCITE))
    by_name = {entry.layer.name: entry for entry in shaped.layers}
    assert by_name["axpy"].layer.bottoms == ("up", "conv", "conv")
    assert by_name["axpy"].output == (1, 8, 6, 6)
    assert by_name["dw"].output == (1, 8, 3, 3)
    assert by_name["dw"].layer.op.param_shapes(list(by_name["dw"].inputs)) == [(8, 1, 3, 3), (8,)]
    assert by_name["up2"].output == (1, 8, 6, 6)
    assert by_name["resize"].output == (1, 8, 5, 7)
    weights = {name: [a.shape for a in arrays] for name, _, arrays in initial_weights(shaped)}
    assert weights["dw"] == [(8, 1, 3, 3), (8,)]


def test_a_declared_type_makes_immutable_values(tmp_path):
    ops = [layer.op for layer in compile_text(tmp_path, SQUEEZE_EXCITE).layers
           if not layer.op.built_in]
    assert {op.caffe_type for op in ops} >= {"Axpy", "ConvolutionDepthwise", "Interp"}
    for op in ops:
        assert_immutable_value(op)


def test_fork_layers_render_import_and_render_again(tmp_path):
    net = compile_text(tmp_path, SQUEEZE_EXCITE)
    text = render(net)
    assert 'type: "Axpy"' in text and "shuffle_channel_param {\n    group: 2\n  }" in text
    imported = import_net(text, "<rendered>", fork_types())
    assert [(l.name, l.op, l.bottoms, l.tops) for l in imported.layers] == \
        [(l.name, l.op, l.bottoms, l.tops) for l in net.layers]
    assert render(imported) == text
    with pytest.raises(ArchError, match="layer 'shuffle' has type 'ShuffleChannel', which is not "
                                        "Caffe's own .*: declare the fork's type in an .arch file"):
        import_net(text, "<rendered>")  # without the declarations


def test_a_published_se_resnet_just_works(reference_cls):
    path = reference_root() / "senet" / "SE-ResNet-50.prototxt"
    model = load_model(path)
    shaped = infer_shapes(model.net)
    assert sum(1 for entry in shaped.layers if entry.layer.type == "Axpy") == 16
    assert shaped.layers[-1].output == (1, 1000)


def test_types_of_ones_own_are_declared_with_a_flag(tmp_path):
    (tmp_path / "mine.arch").write_text("layer Mish() { shape = inputs[0] }\n")
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text('input: "data"\ninput_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
                        'layer { name: "m" type: "Mish" bottom: "data" top: "m" }\n')
    archc = [sys.executable, "-m", "archc"]
    plain = subprocess.run([*archc, "summary", str(prototxt)], capture_output=True, text=True)
    assert plain.returncode == 2 and "type 'Mish', which archc does not support" in plain.stderr
    flagged = subprocess.run([*archc, "summary", str(prototxt), "--types", str(tmp_path / "mine.arch")],
                             capture_output=True, text=True)
    assert flagged.returncode == 0 and "Mish" in flagged.stdout
    diffed = subprocess.run([*archc, "diff", "--types", str(tmp_path / "mine.arch"), str(prototxt),
                             str(prototxt)], capture_output=True, text=True)
    assert diffed.returncode == 0, diffed.stderr


def test_a_field_the_declaration_lacks_is_refused_not_dropped():
    text = ('input: "data"\ninput_shape { dim: 1 dim: 4 dim: 6 dim: 6 }\n'
            'layer { name: "dw" type: "ConvolutionDepthwise" bottom: "data" top: "dw" '
            'convolution_param { num_output: 4 kernel_size: 3 stride_h: 2 } }\n')
    with pytest.raises(ArchError, match="convolution_param.stride_h is set, and the declaration "
                                        "of ConvolutionDepthwise"):
        import_net(text, "<dw>", fork_types())


@pytest.mark.parametrize("declaration, message", [
    ("layer Convolution() { shape = inputs[0] }", "one of Caffe's own layer types"),
    ("layer Odd() { size = 1 }", "unknown rule 'size' in layer 'Odd'"),
    ("layer Odd() { bottoms = 2 }", "layer 'Odd' needs a `shape = ...` rule"),
    ("layer Odd(k: int) { shape = inputs[0] }", "name the parameter message they belong to"),
    ("layer Odd(k: int = 1.5) in odd_param { shape = inputs[0] }", "the default of 'k' must be int"),
    ("layer Odd(k: list) in odd_param { shape = inputs[0] }", "unknown field type 'list'"),
])
def test_declaration_mistakes(tmp_path, declaration, message):
    with pytest.raises(ArchError, match=message):
        compile_text(tmp_path, declaration + '\nnet { input "data" [1, 2, 3, 3] }\n')


def test_a_shape_rule_that_gives_no_shape_is_an_error_at_the_layer(tmp_path):
    with pytest.raises(ArchError, match=r"Odd layer 'o': its shape rule \(declared at .*model.arch:1:7\) "
                                        r"gave int"):
        compile_text(tmp_path, 'layer Odd() { shape = 3 }\n'
                               'net { input "data" [1, 2, 3, 3]\n  Odd as "o" }\n')


def test_running_a_fork_layer_is_refused_up_front(caffe, tmp_path):
    model = tmp_path / "model.arch"
    model.write_text(textwrap.dedent(SQUEEZE_EXCITE))
    result = subprocess.run([sys.executable, "-m", "archc", "time", str(model), "--iterations", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "uses layer type(s) Axpy, ConvolutionDepthwise, Interp, ShuffleChannel, Upsample, " \
           "which this Caffe" in result.stderr
