"""The export registries against the IR: every op in OPS has, in each target, a form or a named
refusal, and so has every fork type the model library ships; a refusal reaches the user with the
layer's name, as does a fork layer declared otherwise than the fork's layer a form computes; the
PyTorch names are identifiers, deterministic, and never replace an nn.Module attribute."""
from __future__ import annotations

import keyword
import textwrap

import pytest

from archc import dsl
from archc.export import to_onnx, to_pytorch
from archc.export.common import ExportError, Refusal
from archc.ir import Layer, Net, infer_shapes
from archc.ir.ops import OPS, Exp, Pooling, ReLU, Split
from archc.model import fork_types

REGISTRIES = {"ONNX": to_onnx.FORMS, "PyTorch": to_pytorch.FORMS}


@pytest.mark.parametrize("target", sorted(REGISTRIES))
def test_every_op_has_a_form_or_a_named_refusal(target):
    registry = REGISTRIES[target]
    missing = sorted(set(OPS) - set(registry))
    assert not missing, (f"{target}: no export form or Refusal for {', '.join(missing)}: add one "
                         f"to archc/export/to_{target.lower()}.py")
    assert set(registry) <= set(OPS) | set(fork_types()), f"{target}: forms for ops the IR lacks"
    for caffe_type, entry in registry.items():
        assert callable(entry) or (isinstance(entry, Refusal) and entry.reason), caffe_type


def test_a_refused_op_is_named_at_its_layer(monkeypatch):
    monkeypatch.setitem(to_onnx.FORMS, "ReLU", Refusal("no exact form, for the test"))
    shaped = infer_shapes(Net({"data": (1, 2, 4, 4)}, [Layer("act/1", ReLU(), ("data",), ("act",))]))
    with pytest.raises(ExportError, match=r"cannot export layer 'act/1' \(ReLU\) to ONNX: no exact "
                                          r"form, for the test"):
        to_onnx.to_onnx(shaped, None)


EXPORTS = [("ONNX", lambda shaped: to_onnx.to_onnx(shaped, None)),
           ("PyTorch", lambda shaped: to_pytorch.program(shaped))]


@pytest.mark.parametrize("target, export", EXPORTS)
def test_the_argmax_mask_top_is_refused_by_name(target, export):
    shaped = infer_shapes(Net({"data": (1, 2, 4, 4)}, [
        Layer("pool", Pooling("MAX", 2, 2, 2, 2), ("data",), ("pooled", "mask"))]))
    with pytest.raises(ExportError, match=f"'pool' \\(Pooling\\) to {target}: the argmax mask top"):
        export(shaped)


@pytest.mark.parametrize("target, export", EXPORTS)
def test_rewriting_a_view_in_place_is_refused_by_name(target, export):
    # Caffe's Split tops share the bottom's memory: ReLU rewrites 'data' and 'b' too
    shaped = infer_shapes(Net({"data": (1, 2, 4, 4)}, [
        Layer("split", Split(), ("data",), ("a", "b")),
        Layer("relu", ReLU(), ("a",), ("a",))]))
    with pytest.raises(ExportError, match=f"'relu' \\(ReLU\\) to {target}: it rewrites blob 'a' "
                                          f"in place, whose memory Caffe shares with 'data', 'b'"):
        export(shaped)


def test_pytorch_refuses_pooling_padding_beyond_half_the_kernel_and_onnx_takes_it():
    shaped = infer_shapes(Net({"data": (1, 2, 7, 7)}, [
        Layer("pool", Pooling("AVE", 3, 3, 3, 3, 2, 2), ("data",), ("pooled",))]))
    with pytest.raises(ExportError, match="at most half the kernel as padding"):
        to_pytorch.program(shaped)
    to_onnx.to_onnx(shaped, None)


def test_a_constant_past_float32_prints_as_python():
    # Caffe's Exp computes base ** shift in float32 at set-up: exp(100) overflows to inf
    shaped = infer_shapes(Net({"data": (1, 2)},
                              [Layer("grow", Exp(shift=100.0), ("data",), ("grow",))]))
    source = to_pytorch.model_source(to_pytorch.program(shaped), "grow", shaped.blobs)
    assert "grow = torch.exp(data) * float('inf')" in source
    compile(source, "model.py", "exec")


@pytest.mark.parametrize("name, expected", [
    ("conv1/7x7_s2", "conv1_7x7_s2"), ("inception_3a/1x1", "inception_3a_1x1"),
    ("1x1", "layer_1x1"), ("_private", "layer_private"), ("class", "class_"),
    ("forward", "forward_"), ("training", "training_"), ("é", "layer_"), ("", "layer_")])
def test_layer_names_become_identifiers(name, expected):
    assert to_pytorch.identifier(name, "layer", to_pytorch.MODULE_ATTRIBUTES, set()) == expected
    assert expected.isidentifier() and not keyword.iskeyword(expected)


def test_names_made_alike_are_told_apart_in_order():
    taken: set[str] = set()
    made = [to_pytorch.identifier(name, "blob", to_pytorch.RESERVED_VARIABLES, taken)
            for name in ("a/b", "a_b", "a.b", "torch", "F", "self")]
    assert made == ["a_b", "a_b_2", "a_b_3", "torch_", "F_", "self_"]


def test_module_attributes_cover_every_attribute_of_an_nn_module(torch):
    attributes = {name for name in dir(torch.nn.Module()) if not name.startswith("_")}
    assert attributes <= to_pytorch.MODULE_ATTRIBUTES, sorted(attributes - to_pytorch.MODULE_ATTRIBUTES)


@pytest.mark.parametrize("target, export", EXPORTS)
@pytest.mark.parametrize("global_pooling", [False, True])
def test_stochastic_pooling_is_refused_by_name(target, export, global_pooling):
    """A CPU Caffe aborts on it, so no form could be checked; it was exported as an average."""
    pooling = Pooling("STOCHASTIC", global_pooling=True) if global_pooling else \
        Pooling("STOCHASTIC", 2, 2, 2, 2)
    shaped = infer_shapes(Net({"data": (1, 2, 4, 4)}, [Layer("pool", pooling, ("data",), ("p",))]))
    with pytest.raises(ExportError, match=f"'pool' \\(Pooling\\) to {target}: Caffe computes "
                                          f"STOCHASTIC pooling on the GPU alone"):
        export(shaped)


@pytest.mark.parametrize("target", sorted(REGISTRIES))
def test_every_shipped_fork_type_has_a_form_or_a_named_refusal(target):
    missing = sorted(set(fork_types()) - set(REGISTRIES[target]))
    assert not missing, f"{target}: no export form or Refusal for the fork type(s) {missing}"


def declared(tmp_path, declarations: str):
    """The fork types of an .arch file declaring `declarations` (after the shipped ones)."""
    path = tmp_path / "types.arch"
    path.write_text(textwrap.dedent(declarations))
    return {**fork_types(), **dsl.declared_types(str(path))}


@pytest.mark.parametrize("target, export", EXPORTS)
@pytest.mark.parametrize("declaration, layers, refusal", [
    # an Axpy of two bottoms is not the SENet fork's a * x + y
    ("layer Axpy() { bottoms = 2  shape = inputs[1] }",
     lambda types: [Layer("axpy", types["Axpy"](), ("data", "data"), ("axpy",))],
     r"'axpy' \(Axpy\) to {target}: the export computes Axpy as the SENet fork's Axpy .* has 2 "
     r"bottoms, not 3"),
    # the gate must be one factor per item and channel
    ("", lambda types: [Layer("axpy", types["Axpy"](), ("data", "data", "data"), ("axpy",))],
     r"'axpy' \(Axpy\) to {target}: .* by a of \[1, 4, 6, 6\], not one factor per item"),
    # the fork writes as many channels as it reads, whatever num_output says
    ("", lambda types: [Layer("dw", types["ConvolutionDepthwise"](num_output=8, kernel_size=3),
                              ("data",), ("dw",))],
     r"'dw' \(ConvolutionDepthwise\) to {target}: .* writes \[1, 8, 4, 4\] from \[1, 4, 6, 6\], "
     r"and the fork's layer \[1, 4, 4, 4\]"),
    # a field the fork's layer does not read
    ("""layer ConvolutionDepthwise(num_output: int, kernel_size: int, kernel_h: int = 0)
          in convolution_param { shape = inputs[0] }""",
     lambda types: [Layer("dw", types["ConvolutionDepthwise"](num_output=4, kernel_size=1),
                          ("data",), ("dw",))],
     r"'dw' \(ConvolutionDepthwise\) to {target}: .* this declaration \(.*\) declares field "
     r"'kernel_h'"),
    ("", lambda types: [Layer("shuffle", types["ShuffleChannel"](group=3), ("data",), ("s",))],
     r"'shuffle' \(ShuffleChannel\) to {target}: .* has group 3, which does not divide its 4 "
     r"channels"),
    ("", lambda types: [Layer("resize", types["Interp"](height=3, width=3), ("data",), ("r",))],
     r"'resize' \(Interp\) to {target}: the DeepLab/PSPNet fork's Interp is bilinear"),
])
def test_a_fork_layer_other_than_the_forks_is_refused_by_name(tmp_path, target, export,
                                                              declaration, layers, refusal):
    types = declared(tmp_path, declaration)
    shaped = infer_shapes(Net({"data": (1, 4, 6, 6)}, layers(types)))
    with pytest.raises(ExportError, match=refusal.format(target=target)):
        export(shaped)
