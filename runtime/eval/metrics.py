"""Scores -> per-image records -> counts and top-k accuracies (the results document)."""
from __future__ import annotations

import json
import math

import numpy as np

from archc.runtime.eval.settings import EvalSettings, is_integer
from archc.runtime.eval.vallist import Entry

FORMAT = "archc-eval/1"
_EVALUATED_KEYS = {"index", "image", "label", "top", "scores"}
_SKIPPED_KEYS = {"index", "image", "skipped"}


def top_classes(scores: np.ndarray, k: int) -> list[int]:
    """The k best classes, best first; equal scores rank the lower class index first."""
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def image_record(index: int, image: str, label: int, scores: np.ndarray, k: int) -> dict:
    """An evaluated image: its label, its k best classes and their scores, and under `tied` the
    places p (1..k) where the p-th best score equals the next: the top p is then decided by class
    index, not by the net (a saturated softmax ties at 0 or 1)."""
    order = top_classes(scores, k + 1)
    record = {"index": index, "image": image, "label": label, "top": order[:k],
              "scores": [float(scores[i]) for i in order[:k]]}
    tied = [place for place in range(1, min(k, len(order) - 1) + 1)
            if scores[order[place - 1]] == scores[order[place]]]
    if tied:
        record["tied"] = tied
    return record


def skipped_record(index: int, image: str, reason: str) -> dict:
    return {"index": index, "image": image, "skipped": reason}


def record_problem(record: object, entry: Entry, max_k: int) -> str | None:
    """What is wrong with a record read back from a file, for the val list entry it must be about;
    None when it is one `image_record` or `skipped_record` could have written."""
    if not isinstance(record, dict):
        return f"a record that is not an object: {json.dumps(record)[:40]}"
    keys = set(record) - {"notes"}
    if keys != _SKIPPED_KEYS and keys != _EVALUATED_KEYS or "notes" in record and "skipped" in record:
        return f"a record with the keys {', '.join(sorted(record))[:80]}, not an image's"
    if not is_integer(record["index"]) or record["index"] != entry.index \
            or record["image"] != entry.path:
        return (f"the record for {json.dumps(record['image'])[:80]} (index "
                f"{json.dumps(record['index'])[:20]}) where the val list has {entry.path!r} (index "
                f"{entry.index})")
    if "skipped" in record:
        return None if isinstance(record["skipped"], str) else \
            f"a skipped image's record for {entry.path!r} without the reason"
    if not is_integer(record["label"]) or record["label"] != entry.label:
        return (f"the label {json.dumps(record['label'])[:20]} for {entry.path!r}, which the val "
                f"list labels {entry.label}")
    top, scores, notes = record["top"], record["scores"], record.get("notes", ["none"])
    if not (isinstance(top, list) and len(top) == max_k
            and all(is_integer(k) and k >= 0 for k in top)):
        return f"the record for {entry.path!r} holds no top {max_k} classes"
    if not (isinstance(scores, list) and len(scores) == max_k and all(
            (is_integer(v) or isinstance(v, float)) and math.isfinite(v) for v in scores)):
        return f"the record for {entry.path!r} holds no {max_k} finite scores"
    if not (isinstance(notes, list) and notes and all(isinstance(note, str) for note in notes)):
        return f"the record for {entry.path!r} holds malformed notes"
    return None


def hits(record: dict, k: int) -> bool:
    return record["label"] in record["top"][:k]


def accuracy_key(k: int) -> str:
    return f"top{k}"


def summarise(records: list[dict], topk: tuple[int, ...]) -> dict:
    """Counts, correct predictions and accuracies (over the evaluated images) per k."""
    evaluated = [r for r in records if "skipped" not in r]
    correct = {accuracy_key(k): sum(hits(r, k) for r in evaluated) for k in topk}
    return {
        "counts": {"images": len(records), "evaluated": len(evaluated),
                   "skipped": len(records) - len(evaluated),
                   "with_notes": sum(1 for r in evaluated if r.get("notes"))},
        "correct": correct,
        "accuracy": {key: (count / len(evaluated) if evaluated else None)
                     for key, count in correct.items()},
        # images whose top k was decided by a tie at the k-th place
        "ties": {accuracy_key(k): sum(k in r.get("tied", ()) for r in evaluated) for k in topk},
    }


def results_document(settings: EvalSettings, records: list[dict],
                     class_names: list[str] | None = None) -> dict:
    """The results file's document; with the model's class names where they are known."""
    ordered = sorted(records, key=lambda r: r["index"])
    return {
        "format": FORMAT,
        "settings": settings.to_json(),
        **summarise(ordered, settings.topk),
        **({"class_names": class_names} if class_names else {}),
        "skipped": [r for r in ordered if "skipped" in r],
        "images": [r for r in ordered if "skipped" not in r],
    }
