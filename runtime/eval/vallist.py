"""The val list: one `relative/path label` line per image, checked completely before a run starts."""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from archc.runtime.eval.errors import EvalError


@dataclass(frozen=True)
class ValLine:
    path: str       # normalised, relative to the data root
    label: int      # in the val list's class order
    line: int       # where it is in the list, for error messages


@dataclass(frozen=True)
class Entry:
    index: int      # position in the list (0-based); results are kept in this order
    path: str       # as written in the list, relative to the data root
    label: int      # in the model's class order (after any synset remap)


def image_path(root: str, image: str) -> str:
    """Where an image of the list is read: its path under the data root."""
    return os.path.join(root, image)


def parse_val_list(text: str, source: str = "<val>") -> list[ValLine]:
    """The list's lines; a malformed line is an error naming its line number.

    Blank lines and `#` comments are ignored. The label is the last field, so paths may contain
    spaces. A leading `/` is relative to the root, as in the published ILSVRC lists
    (`/Data/CLS-LOC/val/...`); a path that climbs out of the root with `..` is refused.
    """
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.rsplit(None, 1)
        if len(fields) != 2:
            raise EvalError(f"{source}:{number}: expected 'PATH LABEL', got {stripped!r}")
        path, label_text = fields
        try:
            label = int(label_text)
        except ValueError:
            raise EvalError(f"{source}:{number}: the label {label_text!r} is not an integer") from None
        if label < 0:
            raise EvalError(f"{source}:{number}: the label {label} is negative")
        normal = posixpath.normpath(path.lstrip("/"))
        if normal == ".." or normal.startswith("../") or normal == ".":
            raise EvalError(f"{source}:{number}: the path {path!r} does not name a file under the root")
        lines.append(ValLine(normal, label, number))
    if not lines:
        raise EvalError(f"{source}: the val list has no images")
    return lines


def read_val_list(path: str) -> list[ValLine]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EvalError(f"cannot read val list {path}: "
                        f"{getattr(error, 'strerror', None) or error}") from None
    return parse_val_list(text, path)


def label_entries(lines: list[ValLine], num_classes: int, remap: list[int] | None,
                  source: str = "<val>") -> list[Entry]:
    """Entries with labels in the model's order; any label outside the class range is an error."""
    label_space = len(remap) if remap is not None else num_classes
    for line in lines:
        if line.label >= label_space:
            raise EvalError(f"{source}:{line.line}: the label {line.label} is outside the model's "
                            f"{label_space} classes (0..{label_space - 1})")
    if remap is not None and len(remap) != num_classes:
        raise EvalError(f"the synset remap has {len(remap)} classes but the model outputs "
                        f"{num_classes}")
    return [Entry(index, line.path, remap[line.label] if remap is not None else line.label)
            for index, line in enumerate(lines)]
