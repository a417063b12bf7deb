"""What one evaluation ran with: every setting that decides its results, as one typed value.

It travels from the command line to the results file, where it is written under `settings` with
one JSON key per field (lists for tuples), and read back to resume a run: a resumed run must have
the same settings, locations aside, so that it computes what an uninterrupted one would.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from archc.runtime.eval.errors import EvalError

# Settings that may differ between an interrupted run and its resumption: where things are, not
# what they contain (contents are compared through their hashes).
LOCATIONS = ("model", "weights", "val", "root")
# Settings added after the first files of this format were written, with the value every run
# before them had (no folding; no layers allowed to miss weights; no limits on images; no class
# names).
ADDED = {"fold_batchnorm": False, "layers_without_weights": [], "max_image_bytes": None,
         "max_pixels": None, "labels": None}
# How to ask for a setting's other value, where a flag does it.
FLAGS = {"fold_batchnorm": "--keep-batchnorm runs BatchNorm as written",
         "max_image_bytes": "--max-image-bytes sets it (none: no limit, as before there was one)",
         "max_pixels": "--max-pixels sets it (none: no limit, as before there was one)"}


def is_integer(value: object) -> bool:
    """A JSON integer, as json.loads gives it (true and false are bools, and bools are ints)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _list_of(test):
    return lambda value: isinstance(value, list) and all(map(test, value))


def _or_null(test):
    return lambda value: value is None or test(value)


def _is_number(value: object) -> bool:
    return (is_integer(value) or isinstance(value, float)) and math.isfinite(value)


# What the JSON value of a setting of each annotation must be, and how to say so.
_JSON_TYPES = {
    "str": (lambda value: isinstance(value, str), "a string"),
    "str | None": (_or_null(lambda value: isinstance(value, str)), "a string or null"),
    "int": (is_integer, "an integer"),
    "int | None": (_or_null(is_integer), "an integer or null"),
    "bool": (lambda value: isinstance(value, bool), "true or false"),
    "tuple[float, float, float]": (lambda value: _list_of(_is_number)(value) and len(value) == 3,
                                   "a list of 3 numbers"),
    "tuple[int, ...]": (_list_of(is_integer), "a list of integers"),
    "tuple[int, ...] | None": (_or_null(_list_of(is_integer)), "a list of integers or null"),
    "tuple[str, ...]": (_list_of(lambda value: isinstance(value, str)), "a list of strings"),
}


@dataclass(frozen=True)
class EvalSettings:
    model: str                          # absolute paths, and the SHA-256 of what they hold
    model_sha256: str                   # (of the prototxt text, for a model)
    weights: str
    weights_sha256: str
    val: str
    val_sha256: str
    root: str
    preset: str | None                  # the preset used, None when none was
    mean: tuple[float, float, float]    # B, G, R
    std: tuple[float, float, float]
    crop_size: int
    base_size: int                      # the shorter side is resized to this first
    crops: int                          # 1, 12 or 144
    scales: tuple[int, ...] | None      # the shorter sides of the 144-crop protocol
    batch: int
    topk: tuple[int, ...]
    blob: str
    backend: str
    device: str                         # "cpu" or "gpu N"
    nets: int
    synset: str | None                  # the label remap, VAL:MODEL
    fold_batchnorm: bool
    layers_without_weights: tuple[str, ...]
    max_image_bytes: int | None         # images over these are skipped: they decide results
    max_pixels: int | None
    labels: str | None = None           # the file the class names come from (--labels)

    def to_json(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict, where: object) -> EvalSettings:
        """The settings a results file or journal at `where` records; those added since it was
        written take the value they had then."""
        if not isinstance(data, dict):
            raise EvalError(f"{where} holds no settings: remove it or choose another --results")
        data = {**ADDED, **data}
        names = [field.name for field in fields(cls)]
        unknown = sorted(set(data) - set(names))
        missing = [name for name in names if name not in data]
        if unknown or missing:
            raise EvalError(f"{where} holds settings this archc does not write ("
                            + ", ".join([*(f"{key} there" for key in unknown),
                                         *(f"no {key}" for key in missing)])
                            + "): remove it or choose another --results")
        for field in fields(cls):
            fits, expected = _JSON_TYPES[field.type]
            if not fits(data[field.name]):
                raise EvalError(f"{where} holds a setting this archc does not write ("
                                f"{field.name} {json.dumps(data[field.name])[:60]}, not "
                                f"{expected}): remove it or choose another --results")
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in data.items()})

    def difference(self, new: EvalSettings) -> str | None:
        """The first setting (other than a location) whose value differs from `new`, described,
        as `KEY OLD there, NEW now`; None if none does."""
        old_values, new_values = self.to_json(), new.to_json()
        for key in sorted(old_values):
            if key not in LOCATIONS and old_values[key] != new_values[key]:
                flag = f"; {FLAGS[key]}" if key in FLAGS else ""
                return (f"{key} {json.dumps(old_values[key])} there, "
                        f"{json.dumps(new_values[key])} now{flag}")
        return None
