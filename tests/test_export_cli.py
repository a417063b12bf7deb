"""`archc export` end to end: the files it writes keep their contracts (ONNX: Caffe's input names
and shapes with a free batch, named initialisers or, structurally, parameter inputs; PyTorch:
DIR/model.py's `Net` loads DIR/model.safetensors and returns Caffe's outputs), `--check` names
the first diverging layer, and `archc eval --backend onnxruntime|torch` ranks as Caffe does."""
from __future__ import annotations

import json

import numpy as np
import pytest

import evalkit
from archc.cli import cmd_eval, cmd_export
from archc.codegen.render import render
from archc.export import to_onnx
from archc.ir import Layer, Net
from archc.ir.ops import BatchNorm, Convolution, InnerProduct, Pooling, ReLU, Scale, Softmax
from test_export_vs_caffe import import_generated


def small_net(two_outputs: bool = False) -> Net:
    layers = [
        Layer("conv1/3x3", Convolution(6, 3, 3, 2, 2, 1, 1, bias_term=False), ("data",), ("conv1",)),
        Layer("conv1/bn", BatchNorm(), ("conv1",), ("conv1",)),
        Layer("conv1/scale", Scale(bias_term=True), ("conv1",), ("conv1",)),
        Layer("conv1/relu", ReLU(), ("conv1",), ("conv1",)),
        Layer("pool", Pooling("AVE", global_pooling=True), ("conv1",), ("pool",)),
        Layer("fc", InnerProduct(4), ("pool",), ("fc",)),
        Layer("prob", Softmax(), ("fc",), ("prob",)),
    ]
    if two_outputs:
        layers.append(Layer("side", Pooling("MAX", 2, 2, 2, 2), ("conv1",), ("side",)))
    return Net({"data": (1, 3, 12, 12)}, layers, name="small")


@pytest.fixture
def prototxt(tmp_path):
    path = tmp_path / "small.prototxt"
    path.write_text(render(small_net()))
    return path


def export(*args: str) -> int:
    return cmd_export.main([str(arg) for arg in args])


def test_onnx_keeps_caffes_inputs_with_a_free_batch_and_named_initialisers(prototxt, tmp_path,
                                                                          onnxruntime, capsys):
    import onnx
    out = tmp_path / "small.onnx"
    assert export(prototxt, "--to", "onnx", "-o", out) == 0
    assert "wrote" in capsys.readouterr().out
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    [data] = model.graph.input
    dims = [d.dim_param or d.dim_value for d in data.type.tensor_type.shape.dim]
    assert (data.name, dims) == ("data", ["batch", 3, 12, 12])
    assert [output.name for output in model.graph.output] == ["prob"]
    assert {"conv1/3x3.weight", "conv1/bn.running_mean", "conv1/scale.bias", "fc.weight"} <= \
        {tensor.name for tensor in model.graph.initializer}
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).standard_normal((3, 3, 12, 12), dtype=np.float32)
    together = session.run(None, {"data": batch})[0]
    one_by_one = np.concatenate([session.run(None, {"data": batch[i:i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(together, one_by_one, rtol=0, atol=1e-6)


def test_a_structural_onnx_export_takes_its_parameters_as_inputs(prototxt, tmp_path, onnxruntime):
    import onnx
    out = tmp_path / "structure.onnx"
    assert export(prototxt, "--to", "onnx", "-o", out, "--no-weights") == 0
    model = onnx.load(out)
    names = {value.name for value in model.graph.input}
    assert {"data", "conv1/3x3.weight", "fc.bias"} <= names
    assert not names & {tensor.name for tensor in model.graph.initializer}


def test_pytorch_model_py_loads_its_weights_and_returns_caffes_outputs(tmp_path, torch):
    from safetensors.torch import load_file
    for two_outputs in (False, True):
        source = tmp_path / f"net{int(two_outputs)}.prototxt"
        source.write_text(render(small_net(two_outputs)))
        directory = tmp_path / f"out{int(two_outputs)}"
        assert export(source, "--to", "pytorch", "-o", directory) == 0
        module = import_generated(directory, f"small{int(two_outputs)}")
        assert module.CAFFE_LAYERS["conv1_3x3"] == "conv1/3x3"
        net = module.Net()
        net.load_state_dict(load_file(directory / "model.safetensors"))
        assert not net.training
        output = net(torch.zeros(2, 3, 12, 12))
        if two_outputs:
            assert list(output) == ["prob", "side"] and output["side"].shape == (2, 6, 3, 3)
        else:
            assert isinstance(output, torch.Tensor) and output.shape == (2, 4)


def test_a_structural_pytorch_export_writes_no_weights(prototxt, tmp_path, torch):
    assert export(prototxt, "--to", "pytorch", "-o", tmp_path / "out", "--no-weights") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.py"]


@pytest.mark.parametrize("target", ["onnx", "pytorch"])
def test_check_matches_caffe_with_the_weights_file_and_folded(prototxt, tmp_path, caffe,
                                                             onnxruntime, torch, target, capsys):
    weights = tmp_path / "small.caffemodel"
    from archc.cli import cmd_weights
    assert cmd_weights.main(["--init", str(prototxt), "-o", str(weights), "--seed", "3"]) == 0
    out = tmp_path / ("small.onnx" if target == "onnx" else "small")
    image = tmp_path / "red.png"
    evalkit.write_image(image, (0, 0, 255))
    assert export(prototxt, "--to", target, "-o", out, "--weights", weights, "--fold-batchnorm",
                  "--check", "--image", image) == 0
    checks = [line for line in capsys.readouterr().out.splitlines() if line.startswith("check")]
    assert len(checks) == 2 and all("matches Caffe on 4 blobs" in line for line in checks)
    assert checks[1].startswith(f"check (image {image})")


def test_check_names_the_first_layer_that_diverges(prototxt, tmp_path, caffe, onnxruntime,
                                                  monkeypatch, capsys):
    def leaky(step):  # a wrong ReLU: every layer after it differs too, and only it is named
        step.node("LeakyRelu", step.inputs, alpha=0.5)
    monkeypatch.setitem(to_onnx.FORMS, "ReLU", leaky)
    assert export(prototxt, "--to", "onnx", "-o", tmp_path / "m.onnx", "--check") == 1
    assert "diverges from Caffe first at layer 'conv1/relu' (ReLU): blob 'conv1' differs by" in \
        capsys.readouterr().out


def test_check_of_a_net_with_fork_layers_says_caffe_cannot_run_them(tmp_path, caffe, capsys):
    arch = tmp_path / "gated.arch"
    arch.write_text('import "lib/forks.arch"\n'
                    'net {\n  input "data" [1, 4, 6, 6]\n  let x = current\n'
                    '  avepool(global = true) as "squeeze"\n  sigmoid as "gate"\n'
                    '  from [current, x, x]\n  Axpy as "axpy"\n}\n')
    assert export(arch, "--to", "onnx", "-o", tmp_path / "m.onnx", "--check") == 1
    assert (tmp_path / "m.onnx").is_file()
    error = capsys.readouterr().err
    assert "the export is written and left unchecked, as Caffe cannot run the net: " in error
    assert "uses layer type(s) Axpy, which this Caffe" in error


def test_usage_errors(prototxt, tmp_path, capsys):
    assert export(prototxt, "--to", "onnx", "-o", tmp_path / "m.onnx", "--no-weights",
                  "--weights", "w.caffemodel") == 2
    assert "--no-weights exports the structure alone" in capsys.readouterr().err
    assert export(prototxt, "--to", "onnx", "-o", tmp_path / "m.onnx", "--image", "x.png") == 2


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_eval_on_an_exported_backend_ranks_as_caffe_does(caffe, onnxruntime, torch, eval_dataset,
                                                         tmp_path, backend):
    documents = {}
    for kind in ("caffe", backend):
        results = tmp_path / f"{kind}.json"
        assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(results), "--crops",
                                               "12", "--topk", "1,5", "--workers", "0",
                                               backend=kind)) == 0
        documents[kind] = json.loads(results.read_text())
    assert documents[backend]["correct"] == {"top1": evalkit.EXPECTED_TOP1, "top5": evalkit.EXPECTED_TOP5}
    for ours, theirs in zip(documents[backend]["images"], documents["caffe"]["images"]):
        assert ours["top"] == theirs["top"]
        # within 1e-5 of the scores' scale, as everywhere the exports are compared with Caffe
        np.testing.assert_allclose(ours["scores"], theirs["scores"], rtol=0,
                                   atol=1e-5 * max(theirs["scores"]))
