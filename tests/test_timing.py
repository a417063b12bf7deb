"""`archc time`: per-layer averages with warm-up excluded, totals per batch and per image, JSON,
and BatchNorm folded as `archc eval` runs it; on a scripted net and on real Caffe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from archc.cli import cmd_time
from conftest import REPO
from archc.runtime.timing import time_net
from test_loader import SMALL


class _Blob:
    def __init__(self, shape):
        self.data = np.zeros(shape, np.float32)
        self.diff = np.zeros(shape, np.float32)


class _Layer:
    def __init__(self, type_):
        self.type = type_


class ScriptedNet:
    """Quacks like caffe.Net for time_net; layer i takes (i + 1) ms forward and 10 (i + 1) ms
    backward on the shared fake clock, so the expected report is known exactly."""

    def __init__(self, clock):
        self.clock = clock
        self._layer_names = ["conv", "relu", "fc"]
        self.layers = [_Layer("Convolution"), _Layer("ReLU"), _Layer("InnerProduct")]
        self.inputs, self.outputs = ["data"], ["fc"]
        self.blobs = {"data": _Blob((2, 3, 4, 4)), "fc": _Blob((2, 5))}
        self.calls = []

    def _forward(self, start, end):
        self.calls.append(("forward", start))
        self.clock.now += (start + 1) / 1000

    def _backward(self, start, end):
        self.calls.append(("backward", start))
        self.clock.now += 10 * (start + 1) / 1000


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_per_layer_and_total_averages_exclude_the_warm_up():
    clock = FakeClock()
    net = ScriptedNet(clock)
    report = time_net(net, iterations=4, warmup=3, clock=clock)
    assert [(l.name, l.type) for l in report.layers] == [
        ("conv", "Convolution"), ("relu", "ReLU"), ("fc", "InnerProduct")]
    assert [l.forward_ms for l in report.layers] == pytest.approx([1, 2, 3])
    assert [l.backward_ms for l in report.layers] == pytest.approx([10, 20, 30])
    assert (report.forward_ms, report.backward_ms, report.forward_backward_ms) == \
        pytest.approx((6, 60, 66))
    # 7 iterations ran: forward in layer order, backward in reverse order.
    assert net.calls == [("forward", 0), ("forward", 1), ("forward", 2),
                         ("backward", 2), ("backward", 1), ("backward", 0)] * 7
    assert (net.blobs["fc"].diff == 1).all() and net.blobs["data"].data.std() > 0.5
    text = report.format("archc time net")
    assert text.splitlines()[0] == "archc time net: data 2x3x4x4; average of 4 iterations after 3 warm-up"
    assert "Average Forward-Backward:          66.000 ms" in text
    # the totals: a batch of 2 images in 6 ms
    assert text.splitlines()[-3:] == ["Forward per batch of 2:             6.000 ms",
                                      "Forward per image:                  3.000 ms",
                                      "Forward images per second:          333.3"]
    assert report.totals() == pytest.approx({
        "batch": 2, "forward_ms": 6, "forward_ms_per_image": 3, "images_per_second": 1000 / 3,
        "backward_ms": 60, "forward_backward_ms": 66})
    assert report.format("archc time net", with_layers=False).splitlines()[1] == \
        "Average Forward pass:               6.000 ms"


def test_time_command_on_real_caffe(caffe, tmp_path, capsys):
    model = tmp_path / "small.prototxt"
    model.write_text(SMALL)
    assert cmd_time.main([str(model), "--batch", "3", "--input-size", "11x13", "--iterations", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("on CPU: data 3x3x11x13; average of 2 iterations after 1 warm-up")
    # Caffe turns the `input:` declaration into a layer of its own.
    assert [line.split()[:2] for line in lines[2:7]] == [
        ["input", "Input"], ["conv1", "Convolution"], ["relu1", "ReLU"], ["pool1", "Pooling"], ["fc", "InnerProduct"]]
    assert lines[-4].startswith("Average Forward-Backward:")
    assert lines[-3].startswith("Forward per batch of 3: ")


def test_time_command_refuses_sizes_the_net_cannot_take(caffe, tmp_path, capsys):
    model = tmp_path / "small.prototxt"
    model.write_text(SMALL)
    assert cmd_time.main([str(model), "--input-size", "2"]) == 2
    assert "convolution window is larger than the padded 2 x 2 input" in capsys.readouterr().err
    for option in ("--iterations", "--batch"):
        assert cmd_time.main([str(model), option, "0"]) == 2
        assert f"argument {option}: expected a positive integer, got 0" in capsys.readouterr().err


def test_a_layer_without_a_backward_pass_is_a_message_not_an_abort(caffe, tmp_path, capsys):
    # ArgMax has no backward pass, so Caffe is asked in a child process
    model = tmp_path / "argmax.prototxt"
    model.write_text(SMALL + 'layer { name: "a" type: "ArgMax" bottom: "fc" top: "a" }\n')
    assert cmd_time.main([str(model), "--iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"archc: error: Caffe cannot run the forward and backward passes of "
                           f"{model}: Not Implemented Yet")


def test_a_layer_with_two_tops_is_timed_through_caffe(caffe, tmp_path, capsys):
    # archc models one top per layer; Caffe's MAX pooling may also write its mask, so Caffe is
    # asked (in a child process) and the net is timed
    model = tmp_path / "mask.prototxt"
    model.write_text('input: "data"\ninput_shape { dim: 1 dim: 2 dim: 4 dim: 4 }\n'
                     'layer { name: "p" type: "Pooling" bottom: "data" top: "p" top: "mask" '
                     'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')
    assert cmd_time.main([str(model), "--iterations", "1"]) == 0
    assert "Pooling" in capsys.readouterr().out


def test_json_carries_the_totals_and_batchnorm_is_folded_as_eval_runs_it(caffe, capsys):
    arch = str(REPO / "archs" / "resnext.arch")
    base = [arch, "--depth", "50", "--size", "32", "--iterations", "1", "--warmup", "0"]
    assert cmd_time.main([*base, "--batch", "2", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"] == f"{arch} --depth 50 --size 32" and document["device"] == "cpu"
    assert document["batchnorm_folded"] == 53 and document["inputs"] == {"data": [2, 3, 32, 32]}
    totals = document["totals"]
    assert totals["batch"] == 2
    assert totals["forward_ms_per_image"] == pytest.approx(totals["forward_ms"] / 2)
    assert totals["images_per_second"] == pytest.approx(2000 / totals["forward_ms"])
    layer_types = {layer["type"] for layer in document["layers"]}
    assert "BatchNorm" not in layer_types and "Convolution" in layer_types
    # as written: the BatchNorm layers are timed; --summary leaves the layers out
    assert cmd_time.main([*base, "--keep-batchnorm", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["batchnorm_folded"] == 0
    assert sum(layer["type"] == "BatchNorm" for layer in written["layers"]) == 53
    assert cmd_time.main([*base, "--summary", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {
        "model", "device", "backend", "batchnorm_folded", "inputs", "iterations", "warmup", "totals"}
    assert cmd_time.main([*base, "--summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"archc time {arch} --depth 50 --size 32 on CPU, 53 BatchNorm "
                               f"folded as archc eval runs them: data 1x3x32x32;")
    assert [line.split(":")[0] for line in lines[1:]] == [
        "Average Forward pass", "Average Backward pass", "Average Forward-Backward",
        "Forward per batch of 1", "Forward per image", "Forward images per second"]
