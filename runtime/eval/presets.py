"""Evaluation presets: the seed's preprocessing values per model family.

Mean and std are per channel in BGR order (OpenCV decodes to BGR and the published models were
trained on BGR input). `bases` maps each published crop size to the size the shorter side is
resized to first. Every value can be overridden on the command line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

RESNET_BASES = {224: 256, 320: 320}
INCEPTION_BASES = {299: 320, 395: 395}


@dataclass(frozen=True)
class Preset:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_size: int
    bases: dict[int, int]
    synset: str | None = None  # label remap "VAL:MODEL", for weights trained in another class order
    description: str = ""

    def base_for(self, crop_size: int) -> int:
        """The shorter-side size for a crop size: the published pairing, else the crop size itself
        (the crop then spans the whole shorter side)."""
        return self.bases.get(crop_size, crop_size)


_RESNEXT = Preset(mean=(103.52, 116.28, 123.675), std=(57.375, 57.12, 58.395), crop_size=224,
                  bases=RESNET_BASES, description="ResNeXt and wide ResNets (torch-style mean/std)")
_INCEPTION = Preset(mean=(128.0, 128.0, 128.0), std=(128.0, 128.0, 128.0), crop_size=299,
                    bases=INCEPTION_BASES, description="Inception-v4 and Inception-ResNet-v2")

PRESETS: dict[str, Preset] = {
    "resnet-v2": Preset(mean=(102.9801, 115.9465, 122.7717), std=(1.0, 1.0, 1.0), crop_size=224,
                        bases=RESNET_BASES, description="pre-activation ResNets (101, 152, 269)"),
    "inception": _INCEPTION,
    # The Inception-v3 weights use the ILSVRC2015 devkit's class order; the usual val list is in
    # ILSVRC2012 (sorted WNID) order.
    "inception-v3": Preset(mean=_INCEPTION.mean, std=_INCEPTION.std, crop_size=299,
                           bases=INCEPTION_BASES, synset="2012:2015",
                           description="Inception-v3 (weights in ILSVRC2015 class order)"),
    "resnext": _RESNEXT,
    "wrn": _RESNEXT,
}
DEFAULT_PRESET = "resnext"

# Checked in order: the first family the model's file name names (whole family names, so that
# mobilenet_v2 or wide_densenet pick none).
_NAME_PATTERNS = ((r"inception[-_]?v3", "inception-v3"), (r"inception", "inception"),
                  (r"resnext", "resnext"), (r"(?<![a-z])wrn|wide[-_]?resnet", "wrn"),
                  (r"resnet[-_]?\d*[-_]v2", "resnet-v2"))


def preset_for_model(file_name: str) -> str | None:
    """The preset a model's file name suggests (e.g. deploy_inception-v3.prototxt -> inception-v3)."""
    name = file_name.lower()
    for pattern, preset in _NAME_PATTERNS:
        if re.search(pattern, name):
            return preset
    return None
