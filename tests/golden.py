"""Golden comparisons: a generated model against a published deploy prototxt, semantically."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from archc.analysis.diff import diff_nets, normalise
from archc.codegen.parse import read_prototxt
from archc.errors import ArchError
from archc.ir.net import infer_shapes
from archc.model import load_model
from archc.runtime.caffe_env import import_caffe
from archc.runtime.loader import expected_from_caffe, load_net_text
from archc.runtime.weights import expected_from_ir

REPO = Path(__file__).resolve().parent.parent


def generate(arch: str, **params) -> tuple:
    """Compile archs/<arch> with `--name value` params; returns (IR net, prototxt text)."""
    model = load_model(REPO / "archs" / arch, {k: str(v) for k, v in params.items()})
    return model.net, model.text


def assert_matches(text: str, reference: Path) -> None:
    """No semantic difference (names, types, wiring, parameters, inputs) from `reference`."""
    ours = normalise(read_prototxt(text, "<generated>"))
    theirs = normalise(read_prototxt(reference.read_text(), str(reference)))
    differences = diff_nets(ours, theirs)
    assert not differences, f"{len(differences)} differences from {reference.name}:\n" + "\n".join(
        str(d) for d in differences[:20])


def output_shape(arch: str, **params) -> tuple[int, ...]:
    """The shape of the last layer's output, after full shape inference."""
    net, _ = generate(arch, **params)
    shaped = infer_shapes(net)
    return shaped.layers[-1].output


def layers_by_name(net) -> dict:
    """The net's layers, looked up by layer name."""
    return {layer.name: layer for layer in net.layers}


def assert_only_input_size_changes(arch: str, size: int, **params) -> None:
    """Generating at `size` changes nothing but the input's spatial dims, and the net still
    infers all the way to a (1, classes) output."""
    default_net, default_text = generate(arch, **params)
    net, text = generate(arch, size=size, **params)
    default_size = default_net.inputs["data"][2]
    assert net.inputs == {"data": (1, 3, size, size)}
    assert text.replace(f"dim: {size}", f"dim: {default_size}") == default_text
    assert infer_shapes(net).layers[-1].output == (1, int(params.get("classes", 1000)))


def set_up_in_caffe(net, text: str):
    """The caffe.Net of `text` (the rendering of `net`), set up through archc's loader; a net with
    a layer a CPU Caffe cannot run forward (STOCHASTIC pooling), which the loader refuses as eval
    would abort on it, is set up by Caffe directly, after checking that refusal."""
    if all(layer.op.cpu_forward() for layer in net.layers):
        return load_net_text(text, "<generated>").net
    with pytest.raises(ArchError, match="Caffe cannot run the forward pass of <generated>"):
        load_net_text(text, "<generated>")
    caffe = import_caffe()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "net.prototxt"
        path.write_text(text)
        return caffe.Net(str(path), caffe.TEST)


def assert_caffe_allocates_the_inferred_shapes(net, text: str):
    """Real Caffe, given the generated prototxt, allocates exactly the blob and parameter shapes
    the IR inferred (needs the `caffe` fixture); the Caffe net, for further checks."""
    shaped = infer_shapes(net)
    caffe_net = set_up_in_caffe(net, text)
    assert {name: tuple(caffe_net.blobs[name].data.shape) for name in shaped.blobs} == shaped.blobs
    # Caffe inserts parameterless Split layers of its own: compare the layers that own blobs.
    assert {name: shapes for name, shapes in expected_from_caffe(caffe_net).items() if shapes} == \
        {name: shapes for name, shapes in expected_from_ir(shaped).items() if shapes}
    return caffe_net


def conv_and_fc_macs(rows) -> int:
    """Multiply-accumulates of the convolutions and inner products (what papers quote)."""
    return sum(row.macs for row in rows if row.layer.type in ("Convolution", "InnerProduct"))
