"""EvalSettings: one typed value from the command line to the results file and back."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from archc.runtime.eval.errors import EvalError
from archc.runtime.eval.settings import EvalSettings

SETTINGS = EvalSettings(
    model="/m/tiny.prototxt", model_sha256="a" * 64, weights="/m/tiny.caffemodel",
    weights_sha256="b" * 64, val="/d/val.txt", val_sha256="c" * 64, root="/d", preset=None,
    mean=(10.0, 20.0, 30.0), std=(255.0, 200.0, 100.0), crop_size=224, base_size=256, crops=144,
    scales=(256, 288, 320, 352), batch=8, topk=(1, 5), blob="prob", backend="caffe", device="cpu",
    nets=2, synset="2012:2015", fold_batchnorm=True, layers_without_weights=("fc",),
    max_image_bytes=1000, max_pixels=None)

# The settings of a results file as archc wrote them before they were typed.
WRITTEN = {
    "backend": "caffe", "base_size": 256, "batch": 8, "blob": "prob", "crop_size": 224,
    "crops": 144, "device": "cpu", "fold_batchnorm": True, "layers_without_weights": ["fc"],
    "max_image_bytes": 1000, "max_pixels": None, "mean": [10.0, 20.0, 30.0], "model": "/m/tiny.prototxt", "model_sha256": "a" * 64,
    "nets": 2, "preset": None, "root": "/d", "scales": [256, 288, 320, 352],
    "std": [255.0, 200.0, 100.0], "synset": "2012:2015", "topk": [1, 5],
    "val": "/d/val.txt", "val_sha256": "c" * 64, "weights": "/m/tiny.caffemodel",
    "weights_sha256": "b" * 64,
}


def test_the_json_keys_and_values_are_those_results_files_hold():
    assert json.dumps(SETTINGS.to_json(), sort_keys=True) == \
        json.dumps({**WRITTEN, "labels": None}, sort_keys=True)
    assert EvalSettings.from_json(WRITTEN, "r.json") == SETTINGS


def test_settings_added_since_a_file_was_written_take_the_value_they_had():
    old = {key: value for key, value in WRITTEN.items()
           if key not in ("fold_batchnorm", "layers_without_weights", "max_image_bytes", "max_pixels")}
    read = EvalSettings.from_json(old, "r.json")
    assert (read.fold_batchnorm, read.layers_without_weights, read.labels) == (False, (), None)
    assert (read.max_image_bytes, read.max_pixels) == (None, None)


def test_a_difference_names_the_first_setting_and_the_flag_that_sets_it():
    moved = replace(SETTINGS, model="/elsewhere/tiny.prototxt", root="/e")
    assert SETTINGS.difference(moved) is None  # locations may change between runs
    assert SETTINGS.difference(replace(SETTINGS, crop_size=320, topk=(1,))) == \
        "crop_size 224 there, 320 now"
    assert SETTINGS.difference(replace(SETTINGS, fold_batchnorm=False)) == \
        "fold_batchnorm true there, false now; --keep-batchnorm runs BatchNorm as written"


def test_settings_this_archc_does_not_write_are_refused():
    with pytest.raises(EvalError, match=r"^r.json holds settings this archc does not write "
                                        r"\(colour there, no nets\): remove it"):
        EvalSettings.from_json({**{k: v for k, v in WRITTEN.items() if k != "nets"},
                                "colour": "blue"}, "r.json")
    with pytest.raises(EvalError, match="r.json holds no settings"):
        EvalSettings.from_json(["not", "a", "dict"], "r.json")


@pytest.mark.parametrize("key, value, expected", [
    ("model", 5, "a string"), ("preset", [], "a string or null"), ("crops", "12", "an integer"),
    ("crops", True, "an integer"), ("fold_batchnorm", 1, "true or false"),
    ("mean", [1, 2], "a list of 3 numbers"), ("mean", [1, "2", 3], "a list of 3 numbers"),
    ("topk", [1, 5.0], "a list of integers"), ("scales", "256", "a list of integers or null"),
    ("layers_without_weights", [None], "a list of strings"), ("max_pixels", 1.5, "an integer or null"),
])
def test_settings_of_a_type_this_archc_does_not_write_are_refused(key, value, expected):
    with pytest.raises(EvalError, match=rf"^r.json holds a setting this archc does not write "
                                        rf"\({key} .*, not {expected}\): remove it or choose "
                                        rf"another --results$"):
        EvalSettings.from_json({**WRITTEN, key: value}, "r.json")
