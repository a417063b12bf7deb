"""The structural ops (LRN, Deconvolution, Crop, MVN, Reduction, ArgMax, Tile, SPP, Embed, Im2col,
BatchReindex, LSTMUnit, LSTM, RNN) exported to ONNX and PyTorch compute Caffe's blobs: nets
built with each op's settings away from their defaults, where a target's own op differs from
Caffe's, run through real Caffe, ONNX Runtime and the generated model.py, every blob within
1e-5 of its largest magnitude; and what has no exact form is refused by name, saying why."""
from __future__ import annotations

import numpy as np
import pytest

from archc.export import to_onnx, to_pytorch
from archc.export.common import ExportError
from archc.ir import Layer, Net, infer_shapes
from archc.ir.ops import (LRN, LSTM, MVN, RNN, SPP, ArgMax, BatchReindex, Crop, Deconvolution,
                          Embed, Filter, Im2col, InnerProduct, LSTMUnit, Pooling, Reduction, ReLU,
                          Tile)
from archc.runtime import exporting
from archc.runtime.export_check import caffe_blobs
from test_export_vs_caffe import (assert_matches_caffe, onnxruntime_blobs, pytorch_blobs,
                                  random_parameters)


def layer(name, op, bottoms, tops=None) -> Layer:
    return Layer(name, op, tuple(bottoms), tuple(tops or (name,)))


def planes_net() -> Net:
    """The ops over N x C x H x W planes, each with settings where Caffe's semantics show."""
    return Net({"data": (2, 8, 10, 10)}, [
        # alpha / size across channels; within a channel alpha / size**2, 1 in place of k
        layer("lrn_across", LRN(3, 0.6, 0.6, "ACROSS_CHANNELS", 2.0), ["data"]),
        layer("lrn_within", LRN(5, 3.0, 0.9, "WITHIN_CHANNEL", 4.0), ["data"]),
        # grouped, strided unevenly, padded, dilated; and without a bias
        layer("deconv", Deconvolution(6, 3, 2, 2, 1, 1, 0, group=2, dilation=2), ["data"]),
        layer("deconv_plain", Deconvolution(10, 4, 4, 2, 2, 1, 1, bias_term=False), ["lrn_within"]),
        # offsets per axis from axis 2, and one offset for the axes from axis 1
        layer("pooled", Pooling("MAX", 3, 3, 2, 2), ["data"]),
        layer("crop", Crop(2, (1, 3)), ["deconv", "pooled"]),
        layer("crop_one_offset", Crop(1, (1,)), ["deconv_plain", "crop"]),
        # eps added to the standard deviation; the mean alone, across channels; a 2-D input
        layer("mvn", MVN(True, False, 0.5), ["data"]),
        layer("mvn_mean", MVN(False, True), ["deconv"]),
        layer("fc", InnerProduct(10), ["pooled"]),
        layer("mvn_2d", MVN(True, True, 0.01), ["fc"]),
        # each operation, from a middle axis, the last, and the first (a scalar), with coeff
        layer("sum", Reduction("SUM", 1, 0.5), ["data"]),
        layer("asum", Reduction("ASUM", -1), ["data"]),
        layer("sumsq", Reduction("SUMSQ", 2, -2.0), ["data"]),
        layer("mean", Reduction("MEAN", 0, 3.0), ["data"]),
        # ReLU's zeros tie: Caffe ranks the later index first
        layer("relu", ReLU(), ["data"]),
        layer("argmax_image", ArgMax(True, 5), ["relu"]),
        layer("argmax_indices", ArgMax(False, 3), ["relu"]),
        layer("argmax_axis", ArgMax(False, 4, 1), ["relu"]),
        layer("argmax_values", ArgMax(True, 2, -1), ["relu"]),
        layer("argmax_3d", ArgMax(True, 2), ["fc"]),
        layer("tile", Tile(3, 2), ["pooled"]),
        layer("tile_last", Tile(2, -1), ["fc"]),
        # three levels, the last padded with windows clipped to the padded plane; one level
        layer("spp", SPP(3, "AVE"), ["data"]),
        layer("spp_max", SPP(3, "MAX"), ["deconv"]),
        layer("spp_one", SPP(1, "MAX"), ["data"]),
        layer("im2col", Im2col(3, 2, 2, 1, 1, 0, 2), ["data"]),
    ], name="planes")


def indices_net() -> Net:
    """The ops that read indices: Embed and BatchReindex."""
    return Net({"data": (4, 3, 5), "words": (2, 6), "order": (5,)}, [
        layer("embed", Embed(7, 10), ["words"]),
        layer("embed_plain", Embed(4, 10, bias_term=False), ["words"]),
        layer("reindex", BatchReindex(), ["data", "order"]),
    ], name="indices")


def recurrent_net() -> Net:
    """LSTM and RNN with their start states fed and cont restarting some streams, an x_static,
    and an LSTMUnit on its own."""
    return Net({"x": (4, 3, 2, 3), "cont": (4, 3), "x_static": (3, 5), "h_0": (1, 3, 6),
                "c_0": (1, 3, 6), "rnn_h_0": (1, 3, 5), "gates": (1, 3, 24), "cont_1": (1, 3)}, [
        layer("lstm", LSTM(6, True), ["x", "cont", "x_static", "h_0", "c_0"],
              ["lstm", "lstm_h", "lstm_c"]),
        layer("rnn", RNN(5, True), ["x", "cont", "rnn_h_0"], ["rnn", "rnn_h"]),
        layer("unit", LSTMUnit(), ["c_0", "gates", "cont_1"], ["unit_c", "unit_h"]),
    ], name="recurrent")


def inputs_for(net: Net) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    values = {name: rng.standard_normal(shape, dtype=np.float32)
              for name, shape in net.inputs.items()}
    indices = {"words": 10, "order": 4}  # how many rows each selects from
    for name, count in indices.items():
        if name in values:
            values[name] = rng.integers(0, count, net.inputs[name]).astype(np.float32)
    for name in ("cont", "cont_1"):  # 0 starts a sequence; Caffe scales by any other value
        if name in values:
            values[name] = rng.choice(np.float32([0, 1, 1, 0.5]), net.inputs[name])
    return values


NETS = {"planes": planes_net, "indices": indices_net, "recurrent": recurrent_net}


@pytest.fixture(scope="module", params=sorted(NETS))
def structural(request, caffe):
    from archc.codegen.render import render
    net = NETS[request.param]()
    shaped = infer_shapes(net)
    prepared = exporting.Prepared(shaped, random_parameters(shaped))
    inputs = inputs_for(net)
    return request.param, prepared, inputs, caffe_blobs(render(net), f"<{request.param}>",
                                                        prepared.parameters, inputs)


def test_onnxruntime_computes_caffes_structural_ops(structural, onnxruntime):
    name, prepared, inputs, caffe = structural
    assert_matches_caffe(prepared, caffe, onnxruntime_blobs(prepared, inputs), f"ONNX {name}")


def test_pytorch_computes_caffes_structural_ops(structural, torch, tmp_path):
    name, prepared, inputs, caffe = structural
    assert_matches_caffe(prepared, caffe, pytorch_blobs(prepared, inputs, tmp_path, name),
                         f"PyTorch {name}")


def test_the_torch_backend_runs_what_model_py_says_for_them(structural, torch, tmp_path):
    name, prepared, inputs, _ = structural
    generated = pytorch_blobs(prepared, inputs, tmp_path, name)
    evaluated = exporting.TorchRun(prepared, exporting.written_blobs(prepared.shaped))(
        *(inputs[blob] for blob in prepared.shaped.net.inputs))
    assert evaluated.keys() == generated.keys()
    for blob in generated:
        np.testing.assert_array_equal(evaluated[blob], generated[blob], err_msg=blob)


def test_the_planes_net_has_argmax_ties_to_break():
    """argmax_axis keeps 4 of 8 channels of a ReLU: where fewer than 3 are positive, zeros tie
    among those kept, and only Caffe's order (the later index first) says which come first."""
    positives = (inputs_for(planes_net())["data"] > 0).sum(axis=1)
    assert (positives < 3).any()


EXPORTS = {"ONNX": lambda shaped: to_onnx.to_onnx(shaped, None),
           "PyTorch": lambda shaped: to_pytorch.program(shaped)}


@pytest.mark.parametrize("target", sorted(EXPORTS))
def test_filter_is_refused_for_its_data_dependent_batch(target):
    shaped = infer_shapes(Net({"data": (4, 3), "keep": (4, 1)}, [
        layer("filter", Filter(), ["data", "keep"], ["kept"])]))
    with pytest.raises(ExportError, match=f"'filter' \\(Filter\\) to {target}: its tops keep only "
                                          f"the items whose selector is not 0"):
        EXPORTS[target](shaped)


@pytest.mark.parametrize("target", sorted(EXPORTS))
@pytest.mark.parametrize("op, states", [(LSTM(4), 2), (RNN(4), 1)])
def test_a_recurrent_layer_that_carries_state_between_passes_is_refused(target, op, states):
    shaped = infer_shapes(Net({"x": (3, 2, 5), "cont": (3, 2)}, [layer("seq", op, ["x", "cont"])]))
    with pytest.raises(ExportError, match=f"'seq' \\({op.caffe_type}\\) to {target}: without "
                                          f"expose_hidden, Caffe starts each forward pass from the "
                                          f"hidden state the previous pass ended with"):
        EXPORTS[target](shaped)


def test_pytorch_refuses_an_spp_level_padded_over_half_its_kernel_and_onnx_takes_it():
    # 9 x 9 in 4 x 4 bins: Caffe pools 3 x 3 windows padded by 2
    shaped = infer_shapes(Net({"data": (1, 2, 9, 9)}, [layer("spp", SPP(3), ["data"])]))
    with pytest.raises(ExportError, match=r"'spp/level2' \(Pooling\) to PyTorch: PyTorch pools "
                                          r"with at most half the kernel as padding"):
        to_pytorch.program(shaped)
    to_onnx.to_onnx(shaped, None)
