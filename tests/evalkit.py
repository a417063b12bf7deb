"""Test data for `archc eval` with answers known by construction, and helpers that watch a run.

The tiny net is global average pooling -> InnerProduct -> Softmax. Class k has a prototype colour;
the InnerProduct scores an image's mean (normalised) colour x by 2 p_k.x - |p_k|^2, which ranks the
classes by the distance from x to their prototypes p_k. Every crop of a uniform image has the
image's colour, so an image's top-k is the k classes with the nearest prototype colours, whatever
the crop protocol.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from archc.runtime.weights import write_caffemodel

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


# (class whose prototype the image's colour is nearest, label in the val list): six top-1 hits,
# three labels that rank 2nd to 4th (top-5 hits), three that rank outside the top 5.
CASES = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5),
         (6, 8), (7, 6), (8, 5),
         (9, 0), (0, 9), (3, 9)]
EXPECTED_TOP1, EXPECTED_TOP5 = 6, 9
SHAPES = [(40, 30), (30, 44), (32, 32)]  # width, height: landscape, portrait, square


def image_colour(k: int) -> tuple[int, int, int]:
    """Near prototype k, off it in the same direction for every class, so no two classes are ever
    at the same distance."""
    blue, green, red = prototype_colour(k)
    return (blue + 3, green - 3, red)


def write_dataset(directory: Path) -> Path:
    """The images of CASES as PNGs under directory/img and their val list; returns the list."""
    lines = []
    for number, (nearest, label) in enumerate(CASES):
        name = f"img/{number:02d}.png"
        width, height = SHAPES[number % len(SHAPES)]
        write_image(directory / name, image_colour(nearest), width, height)
        lines.append((name, label))
    val = directory / "val.txt"
    write_val(val, lines)
    return val


def write_photos(directory: Path, count: int) -> Path:
    """`count` JPEG photographs-to-be under directory/img and their val list: 500 x 375 noise over
    a colour gradient, enough work per image (decoding, 12 crops of 224) for a run to last long
    enough to be interrupted. Image n is of class n % CLASSES."""
    rng = np.random.default_rng(7)
    lines = []
    for number in range(count):
        colour = np.array(image_colour(number % CLASSES), np.float64)
        ramp = np.linspace(-30, 30, 500)[None, :, None]
        image = colour + ramp + rng.normal(0, 20, (375, 500, 3))
        name = f"img/{number:03d}.jpg"
        (directory / "img").mkdir(exist_ok=True)
        cv2.imwrite(str(directory / name), np.clip(image, 0, 255).astype(np.uint8))
        lines.append((name, number % CLASSES))
    val = directory / "val.txt"
    write_val(val, lines)
    return val


def photo_args(directory: Path, results: Path, *extra: str) -> list[str]:
    """`archc eval` arguments for the tiny net over write_photos' images: 12 crops of 224."""
    args = eval_args(directory, "--results", str(results), "--crops", "12", "--batch", "12", *extra)
    for option, value in (("--crop-size", "224"), ("--base-size", "256")):
        args[args.index(option) + 1] = value
    return args


def eval_args(directory: Path, *extra: str, backend: str = "opencv") -> list[str]:
    """`archc eval` arguments for the tiny net over the dataset in `directory`."""
    return [str(directory / "tiny.prototxt"), "--weights", str(directory / "tiny.caffemodel"),
            "--val", str(directory / "val.txt"), "--root", str(directory),
            "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)),
            "--crop-size", "16", "--base-size", "20", "--backend", backend, *extra]


# --- watching a run ------------------------------------------------------------------------

def journal_lines(partial):
    try:
        return partial.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for_lines(process, partial, lines, timeout=60.0):
    """Until the journal holds `lines` lines; False if the run finished first."""
    deadline = time.monotonic() + timeout
    while journal_lines(partial) < lines:
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.002)
    return True


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
