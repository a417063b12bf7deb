"""Folding BatchNorm and Scale into convolutions (runtime/fold_batchnorm.py): which chains fold,
the folded net's structure, the folded parameters against Caffe's formulas, and in real Caffe
the folded net against the net as written, on random statistics and on real trained weights."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from archc.codegen.render import render
from conftest import REPO
from archc.ir import Layer, Net, infer_shapes
from archc.ir.ops import BatchNorm, Convolution, Eltwise, InnerProduct, Pooling, ReLU, Scale
from archc.model import load_model
from archc.runtime import weights
from archc.runtime.backends import BackendSpec
from archc.runtime.fold_batchnorm import Fold, folded_net, folded_parameters, plan
from test_eval_backends import open_nsfw_spec, photo_crops


def conv(name: str, bottom: str, outputs: int = 4, **options) -> Layer:
    options = {"kernel_h": 3, "kernel_w": 3, "pad_h": 1, "pad_w": 1, **options}
    return Layer(name, Convolution(num_output=outputs, **options), (bottom,), (name,))


def in_place(name: str, op, blob: str) -> Layer:
    return Layer(name, op, (blob,), (blob,))


def net_of(*layers: Layer) -> Net:
    return Net({"data": (1, 4, 8, 8)}, list(layers), name="fold")


def test_convolution_batchnorm_scale_folds_and_the_rest_stays():
    net = net_of(conv("c", "data", bias_term=False), in_place("c_bn", BatchNorm(eps=1e-3), "c"),
                 in_place("c_scale", Scale(bias_term=True), "c"), in_place("c_relu", ReLU(), "c"))
    folds = plan(net)
    assert folds == [Fold("c", "c_bn", "c_scale", 1e-3)]
    folded = folded_net(net, folds)
    assert [layer.name for layer in folded.layers] == ["c", "c_relu"]
    assert folded.layers[0].op == replace(net.layers[0].op, bias_term=True)
    assert infer_shapes(folded).blobs == infer_shapes(net).blobs


def test_batchnorm_without_scale_folds_alone():
    net = net_of(conv("c", "data"), in_place("c_bn", BatchNorm(), "c"), in_place("r", ReLU(), "c"))
    assert plan(net) == [Fold("c", "c_bn", None, 1e-5)]


@pytest.mark.parametrize("case", ["reader before", "writer before", "not in place",
                                  "batch statistics", "scale not in place", "scale not per channel"])
def test_chains_that_would_change_what_a_layer_sees_are_kept(case):
    layers = [conv("c", "data"), in_place("c_bn", BatchNorm(), "c"),
              in_place("c_scale", Scale(), "c")]
    if case == "reader before":  # the pooling must see the convolution's raw output
        layers.insert(1, Layer("peek", Pooling(method="MAX", kernel_h=2, kernel_w=2, stride_h=2,
                                               stride_w=2), ("c",), ("peek",)))
    elif case == "writer before":  # the batch norm normalises another layer's output
        layers.insert(1, Layer("overwrite", ReLU(), ("data",), ("c",)))
    elif case == "not in place":  # blob 'c' keeps the raw output for anyone who reads it
        layers[1:] = [Layer("c_bn", BatchNorm(), ("c",), ("c_bn",))]
    elif case == "batch statistics":
        layers[1] = in_place("c_bn", BatchNorm(use_global_stats=False), "c")
    elif case == "scale not in place":
        layers[2] = Layer("c_scale", Scale(), ("c",), ("s",))
    else:  # one factor per value: it stays, after the folded convolution
        layers[2] = in_place("c_scale", Scale(axis=0, num_axes=-1), "c")
    folds = plan(net_of(*layers))
    if case.startswith("scale not"):
        assert folds == [Fold("c", "c_bn", None, 1e-5)]
    else:
        assert folds == []


def test_every_resnext50_convolution_folds():
    net = load_model(REPO / "archs" / "resnext.arch", {"depth": "50", "card": "32"}).net
    folds = plan(net)
    convolutions = [layer for layer in net.layers if layer.type == "Convolution"]
    assert len(folds) == len(convolutions) == 53
    folded = folded_net(net, folds)
    assert {layer.type for layer in folded.layers}.isdisjoint({"BatchNorm", "Scale"})
    assert len(folded.layers) == len(net.layers) - 2 * 53
    assert infer_shapes(folded).blobs == infer_shapes(net).blobs


def caffe_batchnorm_scale(x, batch_norm, scale, eps):
    """Caffe's BatchNorm then Scale on N x C x H x W, written out per channel."""
    factor = 0.0 if batch_norm[2][0] == 0 else 1.0 / batch_norm[2][0]
    mean = (batch_norm[0] * factor)[None, :, None, None]
    std = np.sqrt(batch_norm[1] * factor + eps)[None, :, None, None]
    y = (x - mean) / std
    if scale is not None:
        y = y * scale[0][None, :, None, None]
        if len(scale) > 1:
            y = y + scale[1][None, :, None, None]
    return y


def pointwise_convolution(x, parameters):
    """A 1x1 convolution: per-pixel matrix product plus bias."""
    y = np.einsum("oi,nihw->nohw", parameters[0][:, :, 0, 0].astype(np.float64), x)
    if len(parameters) > 1:
        y = y + parameters[1][None, :, None, None]
    return y


@pytest.mark.parametrize("factor", [1.0, 0.25, 0.0])
@pytest.mark.parametrize("with_bias,with_scale,scale_bias", [(False, True, True), (True, True, False),
                                                             (True, False, False)])
def test_folded_parameters_compute_convolution_then_batchnorm_then_scale(factor, with_bias,
                                                                          with_scale, scale_bias):
    rng = np.random.default_rng(3)
    channels, inputs, eps = 6, 5, 1e-3
    convolution = [rng.normal(size=(channels, inputs, 1, 1)).astype(np.float32)]
    if with_bias:
        convolution.append(rng.normal(size=channels).astype(np.float32))
    batch_norm = [rng.normal(size=channels).astype(np.float32),
                  rng.uniform(0.1, 3, size=channels).astype(np.float32),
                  np.array([factor], np.float32)]
    scale = None
    if with_scale:
        scale = [rng.normal(size=channels).astype(np.float32)]
        if scale_bias:
            scale.append(rng.normal(size=channels).astype(np.float32))
    x = rng.normal(size=(2, inputs, 3, 3))
    expected = caffe_batchnorm_scale(pointwise_convolution(x, convolution), batch_norm, scale, eps)
    folded = folded_parameters(convolution, batch_norm, scale, eps)
    assert [p.dtype for p in folded] == [np.float32, np.float32]
    np.testing.assert_allclose(pointwise_convolution(x, folded), expected, rtol=1e-5, atol=1e-5)


def random_statistics_net() -> Net:
    """Grouped and plain convolutions with and without bias, BatchNorm with and without Scale,
    a residual sum, and a convolution whose BatchNorm is not in place (kept)."""
    return Net({"data": (2, 4, 10, 10)}, [
        conv("a", "data", 8, bias_term=False), in_place("a_bn", BatchNorm(eps=1e-4), "a"),
        in_place("a_scale", Scale(bias_term=True), "a"), in_place("a_relu", ReLU(), "a"),
        conv("b", "a", 8, group=4), in_place("b_bn", BatchNorm(), "b"),
        Layer("sum", Eltwise(operation="SUM"), ("a", "b"), ("sum",)),
        conv("c", "sum", 6, kernel_h=1, kernel_w=1, pad_h=0, pad_w=0),
        Layer("c_bn", BatchNorm(), ("c",), ("c_bn",)),
        in_place("c_scale", Scale(), "c_bn"),
        Layer("pool", Pooling(method="AVE", global_pooling=True), ("c_bn",), ("pool",)),
        Layer("fc", InnerProduct(num_output=5), ("pool",), ("fc",)),
    ], name="random_statistics")


def random_weights(shaped, rng) -> list:
    layers = []
    for entry in shaped.layers:
        shapes = entry.param_shapes
        if not shapes:
            continue
        values = [rng.normal(0, 0.5, shape).astype(np.float32) for shape in shapes]
        if entry.layer.type == "BatchNorm":  # variances positive, a moving-average factor not 1
            values[1] = np.abs(values[1]) + 0.2
            values[2] = np.full(shapes[2], 0.8, np.float32)
        layers.append((entry.layer.name, entry.layer.type, values))
    return layers


def test_folded_caffe_net_equals_the_net_as_written(caffe, tmp_path):
    net = random_statistics_net()
    assert [fold.convolution for fold in plan(net)] == ["a", "b"]
    shaped = infer_shapes(net)
    path = tmp_path / "random.caffemodel"
    weights.write_caffemodel(path, random_weights(shaped, np.random.default_rng(5)))
    batch = np.random.default_rng(6).normal(size=(3, 4, 10, 10)).astype(np.float32)
    spec = BackendSpec("caffe", render(net), "random.prototxt", str(path), "fc", shaped)
    as_written, folded = replace(spec, fold=False).open(), spec.open()
    assert "a_bn" in as_written.net.layer_dict and "a_bn" not in folded.net.layer_dict
    assert "c_bn" in folded.net.layer_dict
    expected = as_written.forward(batch)
    np.testing.assert_allclose(folded.forward(batch), expected, rtol=1e-4, atol=1e-5)
    assert np.ptp(expected) > 0.5  # the scores differ: the agreement is not vacuous


def test_folded_open_nsfw_equals_the_net_as_written(caffe):
    batch = photo_crops(4)
    spec = replace(open_nsfw_spec("caffe"), blob="fc_nsfw")
    as_written, folded = replace(spec, fold=False).open(), spec.open()
    types = [layer.type for layer in folded.net.layers]
    assert types.count("BatchNorm") == 0 and types.count("Convolution") == 53
    np.testing.assert_allclose(folded.forward(batch), as_written.forward(batch), rtol=0, atol=1e-4)
