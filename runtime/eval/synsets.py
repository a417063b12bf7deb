"""Class-order remapping by WordNet ID between two synset lists (e.g. ILSVRC2012 -> ILSVRC2015).

A synset file has one class per line, its WNID first (`n01440764 tench, Tinca tinca`); the line
number is the class index. `2012` and `2015` name the two published files in the reference
directory ($ARCHC_REFERENCE_DIR/cls; default ../shared/reference from the working directory,
which is where it lies beside a clone of the repository run from its root).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from archc.files import read_regular_file
from archc.runtime.eval.errors import EvalError

NAMED = {"2012": "synset2012.txt", "2015": "synset2015.txt"}
_WNID = re.compile(r"n\d{8}")
# The published val lists, one per class order: a val list whose labels agree with one of them
# is in that order.
VAL_LISTS = {"2012": "ILSVRC2012_val.txt", "2015": "ILSVRC2015_val.txt"}


def reference_dir() -> Path:
    return Path(os.environ.get("ARCHC_REFERENCE_DIR", Path("..", "shared", "reference")))


def synset_path(name: str) -> Path:
    if name in NAMED:
        return reference_dir() / "cls" / NAMED[name]
    return Path(name)


def _lines(name: str, what: str) -> list[str]:
    """The non-blank lines of a synset list or labels file (`2012`, `2015` or a file path)."""
    path = synset_path(name)
    try:
        lines = read_regular_file(path).decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        hint = " (set ARCHC_REFERENCE_DIR to the directory holding cls/)" if name in NAMED else ""
        raise EvalError(f"cannot read {what} {path}: {getattr(error, 'strerror', None) or error}"
                        f"{hint}") from None
    return [line.strip() for line in lines if line.strip()]


def read_synsets(name: str) -> list[str]:
    """The WNIDs of a synset list (`2012`, `2015` or a file path), in class order."""
    path = synset_path(name)
    wnids = [line.split()[0] for line in _lines(name, "synset list")]
    if len(set(wnids)) != len(wnids):
        raise EvalError(f"synset list {path} names a class twice")
    return wnids


def read_class_names(name: str) -> list[str] | None:
    """The class names of a synset list with words (`n01440764 tench, Tinca tinca` gives `tench,
    Tinca tinca`) or of a labels file (one name a line, after a WNID or not), in class order;
    None for a list of bare WNIDs."""
    names = []
    for line in _lines(name, "class names"):
        first, _, rest = line.partition(" ")
        names.append(rest.strip() if _WNID.fullmatch(first) else line)
    return names if all(names) else None


def parse_remap(spec: str) -> tuple[str, str] | None:
    """`VAL:MODEL`, or just `MODEL` (val labels in 2012 order), or `none`."""
    if spec.lower() == "none":
        return None
    source, sep, target = spec.rpartition(":")
    if not sep:
        return ("2012", spec)
    if not source or not target:
        raise EvalError(f"--synset {spec}: expected VAL:MODEL (e.g. 2012:2015), MODEL, or none")
    return (source, target)


def remap_table(source: str, target: str) -> list[int]:
    """table[i] = the index in `target` order of class i in `source` order."""
    source_ids, target_ids = read_synsets(source), read_synsets(target)
    position = {wnid: index for index, wnid in enumerate(target_ids)}
    missing = [wnid for wnid in source_ids if wnid not in position]
    if missing or len(source_ids) != len(target_ids):
        raise EvalError(f"synset lists {synset_path(source)} and {synset_path(target)} do not hold the "
                        f"same classes ({len(missing)} of {len(source_ids)} missing from the second)")
    return [position[wnid] for wnid in source_ids]


def val_list_order(lines: list[tuple[str, int]]) -> str | None:
    """`2012` or `2015` when the labels of a val list's images agree with the published val list
    of that class order (matched by file name), else None (other images, or no published lists)."""
    labels = {Path(path).name: label for path, label in lines}
    agreeing = {}
    for order, file_name in VAL_LISTS.items():
        try:
            text = (reference_dir() / "cls" / file_name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        shared = same = 0
        for line in text.splitlines():
            parts = line.split()
            label = labels.get(Path(parts[0]).name) if len(parts) == 2 else None
            if label is not None:
                shared += 1
                same += label == int(parts[1])
        agreeing[order] = shared > 0 and same == shared
    found = [order for order, agrees in agreeing.items() if agrees]
    return found[0] if len(found) == 1 else None
