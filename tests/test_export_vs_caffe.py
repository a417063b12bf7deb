"""ONNX Runtime and PyTorch run what archc exports and compute Caffe's blobs: for every model of
the library (default parameters, `weights --init` fillers, fixed seed), for open-nsfw's real
trained weights, and for a net built to need Caffe's exact semantics, every blob the export
computes is within 1e-5 of real Caffe's, relative to the blob's largest magnitude.

The Caffe here has none of the forks' layer types (lib/forks.arch): for a net with Axpy,
ConvolutionDepthwise or ShuffleChannel, Caffe runs an equivalent net of its own layers in their
place (`stock_caffe_equivalent`), which writes the fork layers' tops under their names, and the
export of the net as written is compared with it.

PyTorch here is the generated model.py itself, imported from a temporary directory, with the
weights loaded from the model.safetensors archc wrote."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from archc.export import to_pytorch
from archc.codegen.render import render
from archc.ir import Layer, LayerShapes, Net, ShapedNet, infer_shapes
from archc.ir.ops import (BNLL, ELU, AbsVal, BatchNorm, Bias, Clip, Concat, Convolution, Dropout,
                          Eltwise, Exp, Flatten, InnerProduct, Log, Parameter, Pooling, Power,
                          PReLU, ReLU, Reshape, Scale, Silence, Slice, Softmax, Split, Swish, TanH,
                          Threshold)
from archc.ir.ops.activations import Sigmoid
from archc.model import fork_types, load_model
from archc.runtime import exporting
from archc.runtime.export_check import caffe_blobs, differences, relative_difference
from conftest import REPO
from test_eval_backends import open_nsfw_spec, photo_crops

TOLERANCE = 1e-5


# ----- fork layers as stock Caffe: the reference for their exports --------------------------

def axpy_in_stock_caffe(entry: LayerShapes) -> list[Layer]:
    """a * x + y: x scaled by the gate flattened to N x C (Scale lines a second bottom up from
    its axis, so N x C x 1 x 1 would need x's H and W to be 1), then y added."""
    name, (gate, x, y) = entry.layer.name, entry.layer.bottoms
    return [Layer(f"{name}/gate", Reshape((0, 0)), (gate,), (f"{name}/gate",)),
            Layer(f"{name}/scaled", Scale(0, bias_term=False), (x, f"{name}/gate"),
                  (f"{name}/scaled",)),
            Layer(name, Eltwise("SUM"), (f"{name}/scaled", y), entry.layer.tops)]


def depthwise_in_stock_caffe(entry: LayerShapes) -> list[Layer]:
    """A Convolution with one group per channel: the same blobs, under the same layer name."""
    op, channels = entry.layer.op, entry.inputs[0][1]
    return [replace(entry.layer, op=Convolution(
        channels, op.kernel_size, op.kernel_size, op.stride, op.stride, op.pad, op.pad,
        group=channels, dilation=op.dilation, bias_term=op.bias_term))]


def shuffle_in_stock_caffe(entry: LayerShapes) -> list[Layer]:
    """The channels sliced apart and concatenated in the shuffled order: output channel
    j * group + i is input channel i * (C / group) + j (the fork's Resize_cpu)."""
    name, group, channels = entry.layer.name, entry.layer.op.group, entry.inputs[0][1]
    parts = [f"{name}/channel{c}" for c in range(channels)]
    columns = channels // group
    shuffled = [parts[i * columns + j] for j in range(columns) for i in range(group)]
    return [Layer(f"{name}/slice", Slice(1, tuple(range(1, channels))), entry.layer.bottoms,
                  tuple(parts)),
            Layer(name, Concat(1), tuple(shuffled), entry.layer.tops)]


STOCK_CAFFE = {"Axpy": axpy_in_stock_caffe, "ConvolutionDepthwise": depthwise_in_stock_caffe,
               "ShuffleChannel": shuffle_in_stock_caffe}


def stock_caffe_equivalent(shaped: ShapedNet) -> Net:
    """The net with each fork layer replaced by Caffe's own layers computing its tops."""
    layers = []
    for entry in shaped.layers:
        layers += ([entry.layer] if entry.layer.op.built_in else
                   STOCK_CAFFE[entry.layer.type](entry))
    return replace(shaped.net, layers=layers)


def caffe_reference(text: str, source: str, prepared: exporting.Prepared,
                    inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Caffe's blobs for the net `text` is (a net with fork layers: its stock equivalent's)."""
    shaped = prepared.shaped
    if not all(layer.op.built_in for layer in shaped.net.layers):
        text, source = render(stock_caffe_equivalent(shaped)), f"{source}, fork layers as stock Caffe"
    return caffe_blobs(text, source, prepared.parameters, inputs)


def _caffe_checks(arch: str) -> bool:
    return all(layer.op.built_in or layer.type in STOCK_CAFFE
               for layer in load_model(REPO / "archs" / arch).net.layers)


ARCHS = sorted(path.name for path in (REPO / "archs").glob("*.arch") if _caffe_checks(path.name))

# SE gates are sigmoids of 1x1 convolutions whose inputs reach the hundreds under `weights --init`
# (BatchNorm's stored 0 and 1 normalise nothing): Caffe's and the targets' summation orders round
# those convolutions apart by ~3e-6 of their scale, which sigmoid's slope times that scale turns
# into gates apart by over 1e-5 from standard-normal input. A tenth of it keeps them in the tens.
INPUT_SCALE = {"se_resnet.arch": 0.1, "se_resnext.arch": 0.1}


def import_generated(directory: Path, name: str):
    """The generated model.py as a module (tests only: archc itself never imports it)."""
    spec = importlib.util.spec_from_file_location(f"exported_{name}", directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytorch_blobs(prepared: exporting.Prepared, inputs: dict[str, np.ndarray], directory: Path,
                  name: str) -> dict[str, np.ndarray]:
    """Every blob, from model.py and model.safetensors written as `archc export` writes them."""
    import torch
    from safetensors.numpy import save
    from safetensors.torch import load_file

    blobs = exporting.written_blobs(prepared.shaped)
    program = to_pytorch.program(prepared.shaped, blobs)
    (directory / "model.py").write_text(to_pytorch.model_source(program, name, prepared.shaped.blobs))
    (directory / "model.safetensors").write_bytes(
        save(to_pytorch.state_dict(prepared.shaped, program, prepared.parameters)))
    net = import_generated(directory, name).Net()
    net.load_state_dict(load_file(directory / "model.safetensors"))
    with torch.inference_mode():
        outputs = net(*(torch.from_numpy(inputs[blob]) for blob in prepared.shaped.net.inputs))
    return {blob: value.detach().numpy() for blob, value in outputs.items()}


def onnxruntime_blobs(prepared: exporting.Prepared, inputs: dict[str, np.ndarray]):
    run = exporting.OnnxRuntimeRun(prepared, exporting.written_blobs(prepared.shaped))
    return run(*(inputs[blob] for blob in prepared.shaped.net.inputs))


def assert_matches_caffe(prepared, caffe, ours, target):
    compared = differences(prepared.shaped, caffe, ours)
    assert len(compared) == len(exporting.written_blobs(prepared.shaped))
    worst = max(compared, key=lambda d: d.relative)
    assert worst.relative <= TOLERANCE, f"{target}: {worst}"


def random_input(shaped, seed: int = 1, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
            for name, shape in shaped.net.inputs.items()}


@pytest.fixture(scope="module", params=ARCHS)
def library_model(request, caffe):
    model = load_model(REPO / "archs" / request.param)
    shaped = infer_shapes(model.net)
    prepared = exporting.Prepared(shaped, exporting.parameters_of(shaped, None, seed=0))
    inputs = random_input(shaped, scale=INPUT_SCALE.get(request.param, 1.0))
    return request.param, prepared, inputs, caffe_reference(model.text, model.source, prepared, inputs)


def test_onnxruntime_computes_caffes_blobs_for_the_library(library_model, onnxruntime):
    name, prepared, inputs, caffe = library_model
    assert_matches_caffe(prepared, caffe, onnxruntime_blobs(prepared, inputs), f"ONNX {name}")


def test_pytorch_computes_caffes_blobs_for_the_library(library_model, torch, tmp_path):
    name, prepared, inputs, caffe = library_model
    ours = pytorch_blobs(prepared, inputs, tmp_path, Path(name).stem)
    assert_matches_caffe(prepared, caffe, ours, f"PyTorch {name}")
    assert relative_difference(ours["prob"], caffe["prob"]) <= TOLERANCE


@pytest.fixture(scope="module")
def open_nsfw(caffe):
    spec = open_nsfw_spec("caffe")
    shaped = infer_shapes(spec.shaped.net)
    prepared = exporting.Prepared(shaped, exporting.parameters_of(shaped, spec.weights_path))
    inputs = {"data": photo_crops(2)}
    return prepared, inputs, caffe_blobs(spec.text, spec.source, prepared.parameters, inputs)


def test_onnxruntime_computes_caffes_blobs_on_real_weights(open_nsfw, onnxruntime):
    prepared, inputs, caffe = open_nsfw
    assert_matches_caffe(prepared, caffe, onnxruntime_blobs(prepared, inputs), "ONNX open-nsfw")


def test_pytorch_computes_caffes_blobs_on_real_weights(open_nsfw, torch, tmp_path):
    prepared, inputs, caffe = open_nsfw
    assert_matches_caffe(prepared, caffe, pytorch_blobs(prepared, inputs, tmp_path, "nsfw"),
                         "PyTorch open-nsfw")


def layer(name, op, bottoms, tops=None):
    return Layer(name, op, tuple(bottoms), tuple((name,) if tops is None else tops))


def semantics_net() -> Net:
    """Every op, with the settings where a target's own semantics differ from Caffe's."""
    return Net({"data": (2, 8, 16, 16)}, [
        # grouped, strided; dilated, grouped, no bias
        layer("grouped", Convolution(16, 3, 3, 2, 2, 1, 1, group=4), ["data"]),
        layer("dilated", Convolution(16, 3, 3, 1, 1, 2, 2, group=2, dilation=2, bias_term=False),
              ["data"]),
        # BatchNorm with a moving-average factor other than 1, Scale with bias, leaky ReLU
        layer("dilated_bn", BatchNorm(eps=1e-3), ["dilated"], ["dilated"]),
        layer("dilated_scale", Scale(bias_term=True), ["dilated"], ["dilated"]),
        layer("dilated_relu", ReLU(0.1), ["dilated"], ["dilated"]),
        # ceil rounding: a last window overhanging the unpadded input (16 -> 8, floor gives 7)
        layer("max_ceil", Pooling("MAX", 3, 3, 2, 2), ["dilated"]),
        # average with padding, ceil: the last window is clipped to the padded input (16 -> 9)
        layer("ave_clipped", Pooling("AVE", 3, 3, 2, 2, 1, 1), ["dilated"]),
        # ceil with padding where the last window would start in the padding (9 -> 5, not 6)
        layer("max_dropped", Pooling("MAX", 2, 2, 2, 2, 1, 1), ["ave_clipped"]),
        # average with padding inside the padded input, floor rounding (Inception's)
        layer("ave_padded", Pooling("AVE", 3, 3, 1, 1, 1, 1, rounding="floor"), ["ave_clipped"]),
        layer("global_ave", Pooling("AVE", global_pooling=True), ["ave_padded"]),
        layer("global_max", Pooling("MAX", global_pooling=True), ["ave_padded"]),
        layer("sum", Eltwise("SUM", (0.5, -1.5)), ["grouped", "max_ceil"]),
        layer("product", Eltwise("PROD"), ["grouped", "max_ceil", "sum"]),
        layer("maximum", Eltwise("MAX"), ["grouped", "max_ceil"]),
        layer("batch_stats", BatchNorm(use_global_stats=False), ["sum"]),
        layer("sigmoid", Sigmoid(), ["batch_stats"]),
        layer("joined", Concat(1), ["sum", "sigmoid", "product", "maximum"]),
        layer("cut", Slice(1, (5, 20)), ["joined"], ["cut_a", "cut_b", "cut_c"]),
        layer("flat", Flatten(2), ["cut_a"]),
        layer("flat_softmax", Softmax(-1), ["flat"]),
        layer("reshaped", Reshape((0, -1, 4)), ["cut_c"]),
        layer("fc", InnerProduct(10), ["cut_b"]),
        layer("fc_drop", Dropout(0.3), ["fc"], ["fc"]),
        layer("prob", Softmax(1), ["fc"]),
    ], name="semantics")


def elementwise_net() -> Net:
    """Caffe's element-wise layers and those that route blobs, with settings other than their
    defaults and those where Caffe's arithmetic is its own."""
    return Net({"data": (2, 6, 5, 5), "factors": (6, 5), "shift": (5, 5)}, [
        # Scale's operand from axis over num_axes, or the second bottom's, broadcast over the rest
        layer("scale_bottom", Scale(1, bias_term=True), ["data", "factors"]),
        layer("scale_spatial", Scale(-2, -1), ["data"]),
        layer("scale_scalar", Scale(1, 0, bias_term=True), ["scale_spatial"]),
        layer("split", Split(), ["data"], ["a", "b", "c"]),
        layer("wide", Power(scale=12.0), ["a"]),  # past ±20: BNLL's branches, softplus's cut
        layer("bnll", BNLL(), ["wide"]),
        layer("tanh", TanH(), ["wide"]),
        layer("abs", AbsVal(), ["b"]),
        layer("elu", ELU(0.7), ["b"]),
        layer("square", Power(2.0, -0.5, 1.5), ["b"]),
        layer("cube", Power(3.0, 1.0, -0.25), ["b"]),  # negative bases
        layer("root", Power(0.5, 2.0, 0.1), ["abs"]),
        layer("constant", Power(2.0, 0.0, -1.5), ["b"]),  # scale 0: Caffe ignores the input
        layer("ones", Power(0.0, 3.0, 2.0), ["b"]),
        layer("exp2", Exp(2.0, 0.5, -1.0), ["b"]),
        layer("exp", Exp(-1.0, -0.3, 0.4), ["b"]),
        layer("log10", Log(10.0, 2.0, 0.5), ["abs"]),
        layer("log", Log(-1.0, 1.0, 1.0), ["abs"]),
        layer("clip", Clip(-0.5, 0.8), ["b"]),
        layer("clip_crossed", Clip(0.3, -0.2), ["b"]),  # min > max: every value becomes min
        layer("threshold", Threshold(-0.5), ["clip"]),  # strictly above: the clipped -0.5s give 0
        layer("swish", Swish(1.7), ["b"]),
        layer("prelu", PReLU(), ["c"]),
        layer("prelu_shared", PReLU(channel_shared=True), ["c"]),
        layer("bias_spatial", Bias(2, 2), ["elu"]),
        layer("bias_scalar", Bias(1, 0), ["swish"]),
        layer("bias_bottom", Bias(2), ["prelu", "shift"]),
        layer("bias_bottom_prelu", PReLU(), ["bias_bottom"], ["bias_bottom"]),  # in place
        layer("table", Parameter((6, 5)), []),
        layer("bias_table", Bias(1), ["prelu_shared", "table"]),
        layer("silence", Silence(), ["ones", "cube", "root", "log10"], []),
    ], name="elementwise")


def test_caffe_rewrites_a_views_bottom_and_siblings_in_place(caffe):
    # why both exports refuse such a net (test_export_forms.py): the rewrite reaches 'b'
    net = Net({"data": (1, 2, 4, 4)}, [layer("split", Split(), ["data"], ["a", "b"]),
                                       layer("relu", ReLU(), ["a"], ["a"])])
    inputs = random_input(infer_shapes(net))
    blobs = caffe_blobs(render(net), "<views>", {}, inputs)
    np.testing.assert_array_equal(blobs["b"], np.maximum(inputs["data"], 0))


def random_parameters(shaped) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(5)
    parameters = {}
    for entry in shaped.layers:
        shapes = entry.param_shapes
        if entry.layer.type == "BatchNorm":
            factor = np.float32(0.37)
            parameters[entry.layer.name] = [
                (rng.normal(0, 1, shapes[0]) * factor).astype(np.float32),
                (rng.uniform(0.2, 3, shapes[1]) * factor).astype(np.float32),
                np.array([factor], np.float32)]
        elif shapes:
            parameters[entry.layer.name] = [rng.normal(0, 0.5, shape).astype(np.float32)
                                            for shape in shapes]
    return parameters


def test_the_semantics_net_pools_where_rounding_differs():
    shaped = infer_shapes(semantics_net())
    assert shaped.blobs["max_ceil"][2:] == (8, 8) and shaped.blobs["ave_clipped"][2:] == (9, 9)
    assert shaped.blobs["max_dropped"][2:] == (5, 5)


def forks_net() -> Net:
    """The shipped fork types with the settings their forms must get right: Axpy's gate as
    N x C x 1 x 1 and as N x C; ConvolutionDepthwise strided, padded, dilated, without bias, with
    `group` other than the channels (which the fork ignores); ShuffleChannel in 3 and 4 groups."""
    forks = fork_types()
    axpy, depthwise, shuffle = (forks[name] for name in
                                ("Axpy", "ConvolutionDepthwise", "ShuffleChannel"))
    return Net({"data": (2, 12, 9, 9)}, [
        layer("strided", depthwise(num_output=12, kernel_size=3, stride=2, pad=1), ["data"]),
        layer("dilated", depthwise(num_output=12, kernel_size=3, pad=2, dilation=2, group=12,
                                   bias_term=False), ["data"]),
        layer("squeeze", Pooling("AVE", global_pooling=True), ["dilated"]),
        layer("gate", Sigmoid(), ["squeeze"]),
        layer("excited", axpy(), ["gate", "dilated", "data"]),
        layer("gate_flat", Flatten(1), ["gate"]),
        layer("excited_flat", axpy(), ["gate_flat", "excited", "dilated"]),
        layer("shuffled", shuffle(group=3), ["excited_flat"]),
        layer("shuffled_strided", shuffle(group=4), ["strided"]),
        layer("even", depthwise(num_output=12, kernel_size=2, stride=3, group=1), ["shuffled"]),
    ], name="forks")


@pytest.fixture(scope="module", params=[semantics_net, elementwise_net, forks_net])
def semantics(request, caffe):
    net = request.param()
    shaped = infer_shapes(net)
    prepared = exporting.Prepared(shaped, random_parameters(shaped))
    inputs = random_input(shaped)
    return prepared, inputs, caffe_reference(render(net), f"<{net.name}>", prepared, inputs)


def test_onnxruntime_reproduces_caffes_semantics(semantics, onnxruntime):
    prepared, inputs, caffe = semantics
    assert_matches_caffe(prepared, caffe, onnxruntime_blobs(prepared, inputs), "ONNX")


def test_pytorch_reproduces_caffes_semantics(semantics, torch, tmp_path):
    prepared, inputs, caffe = semantics
    assert_matches_caffe(prepared, caffe, pytorch_blobs(prepared, inputs, tmp_path, "semantics"),
                         "PyTorch")


def test_the_torch_backend_runs_what_model_py_says(semantics, torch, tmp_path):
    prepared, inputs, _ = semantics
    generated = pytorch_blobs(prepared, inputs, tmp_path, "semantics_again")
    evaluated = exporting.TorchRun(prepared, exporting.written_blobs(prepared.shaped))(
        *(inputs[blob] for blob in prepared.shaped.net.inputs))
    assert evaluated.keys() == generated.keys()
    for blob in generated:
        np.testing.assert_array_equal(evaluated[blob], generated[blob], err_msg=blob)


def depthwise_by_definition(x, weight, bias, stride, pad, dilation):
    """The fork's ConvolutionDepthwise: channel c's kernel over channel c alone, zero padding."""
    kernel, (_, _, height, width) = weight.shape[-1], x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = ((side + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
                    for side in (height, width))
    out = np.zeros((*x.shape[:2], out_h, out_w), np.float64)
    for kh in range(kernel):
        for kw in range(kernel):
            rows = padded[:, :, kh * dilation:][:, :, :stride * (out_h - 1) + 1:stride]
            window = rows[:, :, :, kw * dilation:][:, :, :, :stride * (out_w - 1) + 1:stride]
            out += weight[None, :, 0, kh, kw, None, None] * window
    return out if bias is None else out + bias[None, :, None, None]


def shuffle_by_definition(x, group):
    """The fork's ShuffleChannel (Resize_cpu): input channel i * (C / group) + j is output
    channel j * group + i."""
    columns, out = x.shape[1] // group, np.empty_like(x)
    for i in range(group):
        for j in range(columns):
            out[:, j * group + i] = x[:, i * columns + j]
    return out


def test_the_stock_caffe_equivalents_compute_the_forks_definitions(caffe):
    # the reference the fork forms are checked against, against the forks' own source
    net = forks_net()
    shaped = infer_shapes(net)
    parameters = random_parameters(shaped)
    inputs = random_input(shaped)
    blobs = caffe_reference(render(net), "<forks>", exporting.Prepared(shaped, parameters), inputs)
    data = inputs["data"].astype(np.float64)
    expected = {
        "strided": depthwise_by_definition(data, *parameters["strided"], 2, 1, 1),
        "dilated": depthwise_by_definition(data, *parameters["dilated"], None, 1, 2, 2),
        "excited": blobs["gate"] * blobs["dilated"] + data,
        "excited_flat": blobs["gate_flat"][:, :, None, None] * blobs["excited"] + blobs["dilated"],
        "shuffled": shuffle_by_definition(blobs["excited_flat"], 3),
        "shuffled_strided": shuffle_by_definition(blobs["strided"], 4),
        "even": depthwise_by_definition(blobs["shuffled"], *parameters["even"], 3, 0, 1),
    }
    for blob, values in expected.items():
        assert relative_difference(blobs[blob], values) <= TOLERANCE, blob
