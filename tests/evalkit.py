"""Test data for `archc eval` with answers known by construction.

The tiny net is global average pooling -> InnerProduct -> Softmax. Class k has a prototype colour;
the InnerProduct scores an image's mean (normalised) colour x by 2 p_k.x - |p_k|^2, which ranks the
classes by the distance from x to their prototypes p_k. Every crop of a uniform image has the
image's colour, so an image's top-k is the k classes with the nearest prototype colours, whatever
the crop protocol.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from runtime.weights import write_caffemodel

CLASSES = 10
MEAN = (10.0, 20.0, 30.0)    # B, G, R
STD = (255.0, 200.0, 100.0)
SCALE = 20.0                 # keeps softmax probabilities well apart in float32


def prototype_colour(k: int) -> tuple[int, int, int]:
    grey = 20 + 22 * k
    return (grey, 255 - grey, 128)


def normalised(colour) -> np.ndarray:
    return (np.asarray(colour, np.float64) - MEAN) / STD


def expected_ranking(colour) -> list[int]:
    """Classes by the distance of the colour to their prototypes, nearest first."""
    x = normalised(colour)
    distances = [float(np.sum((x - normalised(prototype_colour(k))) ** 2)) for k in range(CLASSES)]
    return sorted(range(CLASSES), key=lambda k: distances[k])


def write_tiny_net(directory: Path, size: int = 16) -> tuple[Path, Path]:
    prototxt = directory / "tiny.prototxt"
    prototxt.write_text(f'''name: "tiny"
input: "data"
input_shape {{ dim: 1 dim: 3 dim: {size} dim: {size} }}
layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param {{ pool: AVE global_pooling: true }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "pool" top: "fc" inner_product_param {{ num_output: {CLASSES} }} }}
layer {{ name: "prob" type: "Softmax" bottom: "fc" top: "prob" }}
''')
    prototypes = np.stack([normalised(prototype_colour(k)) for k in range(CLASSES)])
    weights = (SCALE * 2 * prototypes).astype(np.float32)
    bias = (-SCALE * np.sum(prototypes ** 2, axis=1)).astype(np.float32)
    caffemodel = directory / "tiny.caffemodel"
    write_caffemodel(caffemodel, [("fc", "InnerProduct", [weights, bias])], "tiny")
    return prototxt, caffemodel


def write_image(path: Path, colour, width: int = 40, height: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = colour
    assert cv2.imwrite(str(path), image)


def write_val(path: Path, lines: list[tuple[str, int]]) -> None:
    path.write_text("".join(f"{name} {label}\n" for name, label in lines))
