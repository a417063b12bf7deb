"""Scores -> per-image records -> counts and top-k accuracies (the results document)."""
from __future__ import annotations

import numpy as np

from archc.runtime.eval.results import FORMAT
from archc.runtime.eval.settings import EvalSettings


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
