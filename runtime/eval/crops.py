"""The seed's crop protocols as geometry (pure, testable by hand) plus the code that applies it.

Every protocol starts from the image with its shorter side resized to the base size (aspect kept)
and normalised to float; then:
- 1 crop:   the centre crop_size square;
- 12 crops: the image squashed to base x base; its top-left, bottom-right, top-right, bottom-left
            and centre crops and the whole squashed image resized to crop_size; then the same six
            of the mirrored image;
- 144:      the shorter side resized to each of 4 scales (the seed's for crops 224, 235, 299 and
            320, those of 224 scaled in proportion for other sizes), three squares per scale
            along the longer side (left/centre/right or top/centre/bottom, at 0, m and 2m for a
            margin m, as the seed cuts them), each giving the six above and their mirrors.
The network sees the average of the scores over an image's crops.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_COUNTS = (1, 12, 144)
# The seed's 144-crop scales by crop size (its evaluation script lists these four).
SEED_SCALES = {224: (256, 288, 320, 352), 235: (270, 300, 330, 360), 299: (320, 352, 384, 416),
               320: (352, 384, 416, 448)}
SEED_CROP = 224


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    size: int

    def cut(self, image: np.ndarray) -> np.ndarray:
        return image[self.top:self.top + self.size, self.left:self.left + self.size]


def shorter_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the shorter side equal to `size`, the other scaled and rounded down."""
    short = min(height, width)
    return height * size // short, width * size // short


def centre_box(height: int, width: int, crop: int) -> Box:
    return Box((height - crop) // 2, (width - crop) // 2, crop)


def five_boxes(height: int, width: int, crop: int) -> list[Box]:
    """Top-left, bottom-right, top-right, bottom-left and centre, in the seed's order."""
    bottom, right = height - crop, width - crop
    return [Box(0, 0, crop), Box(bottom, right, crop), Box(0, right, crop), Box(bottom, 0, crop),
            centre_box(height, width, crop)]


def square_boxes(height: int, width: int) -> list[Box]:
    """The three largest squares along the longer side: start, centre and twice the centre's
    offset (the end, or a pixel short of it when the margin is odd: the seed's cut)."""
    side = min(height, width)
    margin = (max(height, width) - side) // 2
    if width >= height:
        return [Box(0, margin * step, side) for step in range(3)]
    return [Box(margin * step, 0, side) for step in range(3)]


def scales_for(crop: int) -> list[int]:
    """The 144-crop shorter-side scales: the seed's where it has them, else its 224 ones in
    proportion."""
    if crop in SEED_SCALES:
        return list(SEED_SCALES[crop])
    return [round(scale * crop / SEED_CROP) for scale in SEED_SCALES[SEED_CROP]]


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def resize_shorter_side(image: np.ndarray, size: int) -> np.ndarray:
    return resize(image, *shorter_side_size(image.shape[0], image.shape[1], size))


def mirror(image: np.ndarray) -> np.ndarray:
    return image[:, ::-1]


def six_crops(image: np.ndarray, crop: int) -> list[np.ndarray]:
    """The five boxes of a (square) image plus the whole image resized to the crop size."""
    height, width = image.shape[:2]
    return [box.cut(image) for box in five_boxes(height, width, crop)] + [resize(image, crop, crop)]


def twelve_crops(image: np.ndarray, crop: int) -> list[np.ndarray]:
    return six_crops(image, crop) + six_crops(mirror(image), crop)


def crops_1(image: np.ndarray, base: int, crop: int) -> list[np.ndarray]:
    return [centre_box(*image.shape[:2], crop).cut(image)]


def crops_12(image: np.ndarray, base: int, crop: int) -> list[np.ndarray]:
    return twelve_crops(resize(image, base, base), crop)


def crops_144(image: np.ndarray, base: int, crop: int) -> list[np.ndarray]:
    result = []
    for scale in scales_for(crop):
        scaled = resize_shorter_side(image, scale)
        for square in square_boxes(*scaled.shape[:2]):
            result.extend(twelve_crops(square.cut(scaled), crop))
    return result


PROTOCOLS = {1: crops_1, 12: crops_12, 144: crops_144}


@dataclass(frozen=True)
class Preprocess:
    """Everything that turns a decoded BGR image into the network's input crops."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    base_size: int
    crop_size: int
    crops: int

    def normalise(self, image: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (image.astype(np.float32) - mean) / std

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """A uint8 BGR image (H x W x 3) -> the crops as one float32 N x 3 x crop x crop array."""
        based = self.normalise(resize_shorter_side(image, self.base_size))
        crops = PROTOCOLS[self.crops](based, self.base_size, self.crop_size)
        return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))
