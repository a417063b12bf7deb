"""The val list: one `relative/path label` line per image, checked completely before a run starts."""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from archc.files import read_regular_file
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
    spaces; but a line whose path ends in a field that is a number too (`a.png 0 1`) is refused:
    a second label is far likelier than a file named so. A leading `/` is relative to the root, as
    in the published ILSVRC lists (`/Data/CLS-LOC/val/...`); a path that climbs out of the root
    with `..`, or holds a NUL byte (no file name can), is refused.
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
        label = _integer(label_text)
        if label is None:
            raise EvalError(f"{source}:{number}: the label {label_text!r} is not an integer")
        if label < 0:
            raise EvalError(f"{source}:{number}: the label {label} is negative")
        last_of_path = path.rsplit(None, 1)[-1]
        if last_of_path != path and _integer(last_of_path) is not None:
            raise EvalError(f"{source}:{number}: expected 'PATH LABEL', got {stripped!r}, which "
                            f"has two labels ({last_of_path} and {label_text}): keep one (a file "
                            f"whose name ends in ' {last_of_path}' must be renamed)")
        if "\0" in path:
            raise EvalError(f"{source}:{number}: the path {path!r} holds a NUL byte, which no "
                            f"file name can")
        normal = posixpath.normpath(path.lstrip("/"))
        if normal == ".." or normal.startswith("../") or normal == ".":
            raise EvalError(f"{source}:{number}: the path {path!r} does not name a file under the root")
        lines.append(ValLine(normal, label, number))
    if not lines:
        raise EvalError(f"{source}: the val list has no images")
    return lines


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def read_val_list(path: str) -> list[ValLine]:
    try:  # a byte-order mark (Windows editors write one) is no part of the first path
        text = read_regular_file(path).decode("utf-8-sig")
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
