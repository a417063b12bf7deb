"""The crop protocols' geometry, checked against hand computation."""
from __future__ import annotations

import numpy as np
import pytest

from archc.runtime.eval.crops import (Box, Preprocess, centre_box, crops_144, five_boxes, scales_for,
                                shorter_side_size, square_boxes)


def coordinate_image(height: int, width: int) -> np.ndarray:
    """Channel 0 holds each pixel's row, channel 1 its column: a crop's first pixel says where it
    was cut from."""
    rows, columns = np.mgrid[0:height, 0:width]
    return np.stack([rows, columns, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def origins(crops: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) of the top-left pixel of each N x 3 x H x W crop."""
    return [(round(float(crop[0, 0, 0])), round(float(crop[1, 0, 0]))) for crop in crops]


IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_shorter_side_resize_keeps_aspect_rounding_down():
    assert shorter_side_size(30, 40, 20) == (20, 26)       # 40 * 20 / 30 = 26.67
    assert shorter_side_size(375, 500, 256) == (256, 341)
    assert shorter_side_size(500, 333, 256) == (384, 256)  # 500 * 256 / 333 = 384.4


def test_centre_and_five_boxes():
    assert centre_box(20, 26, 16) == Box(2, 5, 16)
    assert centre_box(21, 21, 16) == Box(2, 2, 16)         # odd margins round down
    # top-left, bottom-right, top-right, bottom-left, centre
    assert five_boxes(20, 20, 16) == [Box(0, 0, 16), Box(4, 4, 16), Box(0, 4, 16), Box(4, 0, 16),
                                      Box(2, 2, 16)]


def test_three_squares_run_along_the_longer_side_as_the_seed_cuts_them():
    # margin 3 (odd): the seed's third square starts at 2 * 3 = 6, a pixel short of the end
    assert square_boxes(21, 28) == [Box(0, 0, 21), Box(0, 3, 21), Box(0, 6, 21)]
    assert square_boxes(28, 21) == [Box(0, 0, 21), Box(3, 0, 21), Box(6, 0, 21)]
    assert square_boxes(21, 29) == [Box(0, 0, 21), Box(0, 4, 21), Box(0, 8, 21)]
    assert square_boxes(16, 16) == [Box(0, 0, 16)] * 3


def test_144_crop_scales_are_the_seeds_where_it_has_them_and_proportional_otherwise():
    assert scales_for(224) == [256, 288, 320, 352]
    assert scales_for(235) == [270, 300, 330, 360]
    assert scales_for(299) == [320, 352, 384, 416]
    assert scales_for(320) == [352, 384, 416, 448]
    assert scales_for(16) == [18, 21, 23, 25]
    assert scales_for(395) == [451, 508, 564, 621]


def test_single_crop_is_the_centre_of_the_shorter_side_resized_image():
    crops = Preprocess(**IDENTITY, base_size=20, crop_size=16, crops=1)(coordinate_image(20, 24))
    assert crops.shape == (1, 3, 16, 16)
    assert origins(crops) == [(2, 4)]


def test_twelve_crops_are_five_boxes_and_the_whole_image_then_the_same_mirrored():
    # A 20 x 20 image with base 20 is not resized, so crops show their true coordinates.
    image = coordinate_image(20, 20)
    crops = Preprocess(**IDENTITY, base_size=20, crop_size=16, crops=12)(image)
    assert crops.shape == (12, 3, 16, 16)
    first = origins(crops)
    # mirrored: column c of the mirror is column 19 - c of the image
    assert first[:5] == [(0, 0), (4, 4), (0, 4), (4, 0), (2, 2)]
    assert first[6:11] == [(0, 19), (4, 15), (0, 15), (4, 19), (2, 17)]
    # the whole image resized to 16 x 16 (and its mirror) starts at the image's corner
    assert first[5] == (0, 0) and first[11] == (0, 19)
    # the mirror's top-left crop is the image's top-right crop, flipped
    np.testing.assert_array_equal(crops[6], crops[2][:, :, ::-1])


def test_twelve_crops_squash_the_image_to_base_by_base_first():
    crops = Preprocess(**IDENTITY, base_size=20, crop_size=16, crops=12)(coordinate_image(20, 40))
    # squashing 40 columns into 20 halves column positions: the bottom-right crop starts near 8
    _, column = origins(crops)[1]
    assert column in (8, 9)


def test_144_crops_take_three_squares_per_scale():
    # Shorter side 18 equals the first scale for crop 16, so that scale's crops are not resampled:
    # squares of 18 at columns 0, 3 and 6 of an 18 x 24 image, each giving the six and mirrors.
    image = coordinate_image(18, 24)
    crops = Preprocess(**IDENTITY, base_size=18, crop_size=16, crops=144)(image)
    assert crops.shape == (144, 3, 16, 16)
    first_scale = origins(crops[:36])
    for square, left in enumerate((0, 3, 6)):
        twelve = first_scale[12 * square:12 * square + 12]
        assert twelve[:5] == [(0, left), (2, left + 2), (0, left + 2), (2, left), (1, left + 1)]
        right = left + 17  # the mirrored square's first column
        assert twelve[6:11] == [(0, right), (2, right - 2), (0, right - 2), (2, right),
                                (1, right - 1)]


@pytest.mark.parametrize("height, width", [(18, 24), (40, 18), (25, 25)])
def test_144_crops_count_for_any_aspect(height, width):
    based = np.zeros((height, width, 3), np.float32)
    assert len(crops_144(based, 18, 16)) == 144


def test_normalisation_is_per_bgr_channel():
    image = np.full((16, 16, 3), (110, 120, 130), np.uint8)
    crops = Preprocess(mean=(10.0, 20.0, 30.0), std=(100.0, 50.0, 25.0), base_size=16, crop_size=16,
                       crops=1)(image)
    np.testing.assert_allclose(crops[0, :, 0, 0], [1.0, 2.0, 4.0])
